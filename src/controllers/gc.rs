//! Garbage collector: ownerReferences carried out. Dependents whose owners
//! are all gone are deleted, dangling references are dropped, and the
//! `foregroundDeletion` and `orphan` finalizers the API server puts on a
//! deleted owner are served (dependents deleted, or released).
//!
//! The graph holds every deletable kind but events: those the built-in
//! controllers own or are owned by from the shared informers, the others
//! (ConfigMaps, custom resources, …) from metadata-only watches found by
//! discovery. An owner missing from the graph is looked up live when one of
//! its dependents needs a verdict; the graph never trusts its own absence of
//! an owner without such a live read, since the owner's watch may lag the
//! dependent's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Namespace, Node as NodeObject, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::informers::{Informable, Informers};
use crate::apiserver::lifecycle::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// How often every owned object is checked again, which also retries
/// failures and notices owners of kinds outside the graph.
const RESYNC: Duration = Duration::from_secs(30);
/// How soon a failed step is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// One object of the graph: what the collector needs of its metadata.
#[derive(Debug, Clone)]
struct Node {
    res: ApiResource,
    namespace: Option<String>,
    name: String,
    uid: String,
    resource_version: Option<String>,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn of<K: Informable>(obj: &K) -> Node {
        Node::with(ApiResource::erase::<K>(&()), obj.meta())
    }

    fn with(res: ApiResource, meta: &ObjectMeta) -> Node {
        Node {
            res,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// A change seen on one of the graph's kinds.
struct Seen {
    node: Node,
    gone: bool,
}

/// Forwards one kind's changes into the collector; returns, once its cache
/// is filled, the resource it follows.
async fn track<K: Informable>(
    informers: &Informers,
    tx: mpsc::UnboundedSender<Seen>,
) -> ApiResource {
    let informer = informers.get::<K>();
    let store = informer.store();
    let mut changes = Box::pin(informer.changes());
    tokio::spawn(async move {
        while let Some(obj) = changes.next().await {
            let uid = obj.meta().uid.clone();
            let gone = store
                .get(&ObjectRef::from_obj(&*obj))
                .is_none_or(|now| now.meta().uid != uid);
            if tx
                .send(Seen {
                    node: Node::of(&*obj),
                    gone,
                })
                .is_err()
            {
                return;
            }
        }
    });
    informer.ready().await;
    ApiResource::erase::<K>(&())
}

/// Forwards changes of a kind outside the shared informers, read as
/// metadata only (upstream's collector watches every deletable resource
/// the same way); returns once its first list is in.
async fn track_other(client: Client, res: ApiResource, tx: mpsc::UnboundedSender<Seen>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &res);
    let mut writer = Writer::<PartialObjectMeta<DynamicObject>>::new(res.clone());
    let store = writer.as_reader();
    let (ready_tx, mut ready) = watch::channel(false);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(kind = %res.kind, %error, "collector watch failed; retrying");
                    continue;
                }
            };
            writer.apply_watcher_event(&event);
            let (obj, gone) = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
                watcher::Event::Delete(o) => (o, true),
                watcher::Event::InitDone => {
                    ready_tx.send_replace(true);
                    continue;
                }
                watcher::Event::Init => continue,
            };
            // A relist may bring back a namesake; the store tells.
            let gone = gone
                || store
                    .get(&ObjectRef::from_obj_with(&obj, res.clone()))
                    .is_none_or(|now| now.metadata.uid != obj.metadata.uid);
            let seen = Seen {
                node: Node::with(res.clone(), &obj.metadata),
                gone,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    let _ = ready.wait_for(|r| *r).await;
}

/// The resources the collector must follow beyond the shared informers:
/// every listable, watchable, deletable resource but events (which upstream
/// ignores too) and the typed ones.
async fn other_kinds(
    client: &Client,
    typed: &[ApiResource],
) -> Result<Vec<ApiResource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (res, caps) in group.resources_by_stability() {
            let wanted = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v));
            let typed = typed
                .iter()
                .any(|t| t.group == res.group && t.plural == res.plural);
            if wanted && !typed && res.plural != "events" {
                found.push(res);
            }
        }
    }
    Ok(found)
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// What a live read found of an owner.
enum Owner {
    Absent,
    Present(Box<DynamicObject>, ApiResource),
}

struct Collector {
    client: Client,
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    /// Resources of the kinds owners are named by, found via discovery.
    kinds: HashMap<(String, String), (ApiResource, bool)>,
    /// Owners outside the graph seen in foreground or orphan deletion.
    remote: HashMap<String, (ApiResource, Option<String>, String)>,
}

impl Collector {
    fn apply(&mut self, seen: Seen, dirty: &mut BTreeSet<String>) {
        let uid = seen.node.uid.clone();
        if let Some(old) = self.nodes.remove(&uid) {
            for o in &old.owners {
                if let Some(set) = self.dependents.get_mut(&o.uid) {
                    set.remove(&uid);
                    if set.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
        // An owner waiting on its dependents looks again at each change.
        dirty.extend(seen.node.owners.iter().map(|o| o.uid.clone()));
        if seen.gone {
            // Its dependents may now be orphans.
            if let Some(deps) = self.dependents.get(&uid) {
                dirty.extend(deps.iter().cloned());
            }
            return;
        }
        for o in &seen.node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        self.nodes.insert(uid.clone(), seen.node);
        dirty.insert(uid);
    }

    fn api(&self, res: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, res),
            None => Api::all_with(self.client.clone(), res),
        }
    }

    /// The resource an owner reference names, and whether it is namespaced.
    async fn kind_of(&mut self, r: &OwnerReference) -> Result<Option<(ApiResource, bool)>, Error> {
        let key = (r.api_version.clone(), r.kind.clone());
        if let Some(found) = self.kinds.get(&key) {
            return Ok(Some(found.clone()));
        }
        let (group, version) = match r.api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", r.api_version.as_str()),
        };
        let gvk = kube::core::GroupVersionKind::gvk(group, version, &r.kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((res, caps)) => {
                let found = (res, caps.scope == Scope::Namespaced);
                self.kinds.insert(key, found.clone());
                Ok(Some(found))
            }
            // An owner of a kind the server does not serve does not exist.
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an owner live, so that a lagging watch never condemns a
    /// dependent.
    async fn owner(&mut self, r: &OwnerReference, dep_ns: Option<&str>) -> Result<Owner, Error> {
        let Some((res, namespaced)) = self.kind_of(r).await? else {
            return Ok(Owner::Absent);
        };
        let ns = match (namespaced, dep_ns) {
            (true, Some(ns)) => Some(ns),
            // A cluster-scoped dependent cannot have a namespaced owner.
            (true, None) => return Ok(Owner::Absent),
            (false, _) => None,
        };
        match self.api(&res, ns).get_opt(&r.name).await? {
            Some(obj) if obj.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                Ok(Owner::Present(Box::new(obj), res))
            }
            _ => Ok(Owner::Absent),
        }
    }

    async fn process(&mut self, uid: &str) -> Result<(), Error> {
        if let Some(node) = self.nodes.get(uid).cloned() {
            if node.deleting && node.has_finalizer(ORPHAN_FINALIZER) {
                return self.orphan(&node.uid, &node).await;
            }
            if node.deleting && node.has_finalizer(FOREGROUND_FINALIZER) {
                self.foreground(&node.uid, &node).await?;
            }
            if !node.owners.is_empty() {
                self.check_owners(&node).await?;
            }
        } else if let Some((res, ns, name)) = self.remote.get(uid).cloned() {
            self.remote_owner(uid, &res, ns.as_deref(), &name).await?;
        }
        Ok(())
    }

    /// Releases the dependents of an owner deleted with `orphan`.
    async fn orphan(&mut self, owner_uid: &str, owner: &Node) -> Result<(), Error> {
        self.release_dependents(owner_uid).await?;
        self.remove_finalizer(
            &owner.res,
            owner.namespace.as_deref(),
            &owner.name,
            ORPHAN_FINALIZER,
        )
        .await
    }

    async fn release_dependents(&mut self, owner_uid: &str) -> Result<(), Error> {
        let deps: Vec<Node> = self
            .dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).cloned())
            .collect();
        for dep in deps {
            let keep: Vec<&OwnerReference> =
                dep.owners.iter().filter(|o| o.uid != owner_uid).collect();
            self.set_owners(&dep, &keep).await?;
        }
        Ok(())
    }

    /// Deletes the dependents of an owner deleted with `foreground`; the
    /// owner goes once none that blocks it is left.
    async fn foreground(&mut self, owner_uid: &str, owner: &Node) -> Result<(), Error> {
        if self.delete_dependents(owner_uid).await? {
            self.remove_finalizer(
                &owner.res,
                owner.namespace.as_deref(),
                &owner.name,
                FOREGROUND_FINALIZER,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes every dependent not yet deleting; true once none blocks the
    /// owner any more.
    async fn delete_dependents(&mut self, owner_uid: &str) -> Result<bool, Error> {
        let deps: Vec<Node> = self
            .dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).cloned())
            .collect();
        let mut blocking = false;
        for dep in deps {
            if !dep.deleting {
                // A dependent with dependents of its own is deleted in the
                // foreground too, so the chain blocks all the way up.
                let policy = if self.dependents.contains_key(&dep.uid) {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(&dep, policy).await?;
            }
            blocking |= dep
                .owners
                .iter()
                .any(|o| o.uid == owner_uid && o.block_owner_deletion == Some(true));
        }
        Ok(!blocking)
    }

    /// Deletes a dependent whose owners are all gone, drops references to
    /// the gone ones otherwise.
    async fn check_owners(&mut self, node: &Node) -> Result<(), Error> {
        let mut absent = Vec::new();
        for r in &node.owners {
            if self.nodes.contains_key(&r.uid) {
                continue;
            }
            match self.owner(r, node.namespace.as_deref()).await? {
                Owner::Absent => absent.push(r.uid.clone()),
                Owner::Present(obj, res) => self.note_remote(&obj, res),
            }
        }
        if absent.is_empty() {
            return Ok(());
        }
        if absent.len() == node.owners.len() {
            if !node.deleting {
                tracing::info!(kind = %node.res.kind, namespace = ?node.namespace, name = %node.name, "deleting object whose owners are gone");
                self.delete(node, PropagationPolicy::Background).await?;
            }
            return Ok(());
        }
        let keep: Vec<&OwnerReference> = node
            .owners
            .iter()
            .filter(|o| !absent.contains(&o.uid))
            .collect();
        self.set_owners(node, &keep).await
    }

    /// Remembers an owner outside the graph that waits for the collector.
    fn note_remote(&mut self, obj: &DynamicObject, res: ApiResource) {
        let m = &obj.metadata;
        let waits = m.deletion_timestamp.is_some()
            && m.finalizers
                .iter()
                .flatten()
                .any(|f| f == FOREGROUND_FINALIZER || f == ORPHAN_FINALIZER);
        if let (true, Some(uid)) = (waits, m.uid.clone()) {
            self.remote
                .insert(uid, (res, m.namespace.clone(), obj.name_any()));
        }
    }

    async fn remote_owner(
        &mut self,
        uid: &str,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), Error> {
        let obj = self.api(res, ns).get_opt(name).await?;
        let Some(obj) = obj.filter(|o| o.metadata.uid.as_deref() == Some(uid)) else {
            self.remote.remove(uid);
            return Ok(());
        };
        let finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
        if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            self.release_dependents(uid).await?;
            self.remove_finalizer(res, ns, name, ORPHAN_FINALIZER)
                .await?;
        } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
            && self.delete_dependents(uid).await?
        {
            self.remove_finalizer(res, ns, name, FOREGROUND_FINALIZER)
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, node: &Node, policy: PropagationPolicy) -> Result<(), Error> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .api(&node.res, node.namespace.as_deref())
            .delete(&node.name, &params)
            .await
        {
            Ok(_) => Ok(()),
            // Gone already, or replaced by a namesake.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_owners(&self, node: &Node, keep: &[&OwnerReference]) -> Result<(), Error> {
        let patch = json!({"metadata": {
            "ownerReferences": keep,
            "resourceVersion": node.resource_version,
        }});
        self.api(&node.res, node.namespace.as_deref())
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn remove_finalizer(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        finalizer: &str,
    ) -> Result<(), Error> {
        let api = self.api(res, ns);
        let Some(obj) = api.get_opt(name).await? else {
            return Ok(());
        };
        let finalizers: Vec<String> = obj
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.metadata.resource_version,
        }});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs the collector until the process ends.
pub async fn run(informers: Informers) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The kinds built-in controllers create with ownerReferences, and their
    // owners, come from the shared informers the controllers fill anyway: a
    // deleted Deployment's ReplicaSets, their Pods, a StatefulSet's PVCs and
    // ControllerRevisions, a CronJob's Jobs. So do the other kinds some
    // controller or the scheduler informs on already: a second, metadata-only
    // watch of them would only cost memory.
    let mut followed = vec![
        track::<Pod>(&informers, tx.clone()).await,
        track::<ReplicaSet>(&informers, tx.clone()).await,
        track::<Deployment>(&informers, tx.clone()).await,
        track::<StatefulSet>(&informers, tx.clone()).await,
        track::<DaemonSet>(&informers, tx.clone()).await,
        track::<ControllerRevision>(&informers, tx.clone()).await,
        track::<Job>(&informers, tx.clone()).await,
        track::<CronJob>(&informers, tx.clone()).await,
        track::<ReplicationController>(&informers, tx.clone()).await,
        track::<PersistentVolumeClaim>(&informers, tx.clone()).await,
        track::<NodeObject>(&informers, tx.clone()).await,
        track::<Namespace>(&informers, tx.clone()).await,
        track::<Service>(&informers, tx.clone()).await,
        track::<Lease>(&informers, tx.clone()).await,
        track::<PersistentVolume>(&informers, tx.clone()).await,
        track::<StorageClass>(&informers, tx.clone()).await,
        track::<HorizontalPodAutoscaler>(&informers, tx.clone()).await,
        track::<PodDisruptionBudget>(&informers, tx.clone()).await,
        track::<ResourceQuota>(&informers, tx.clone()).await,
    ];
    let client = informers.client();
    let mut gc = Collector {
        client: client.clone(),
        nodes: HashMap::new(),
        dependents: HashMap::new(),
        kinds: HashMap::new(),
        remote: HashMap::new(),
    };
    let mut dirty = BTreeSet::new();
    let mut retry = BTreeSet::new();
    let mut retry_tick = tokio::time::interval(RETRY);
    // The first tick, at once, finds every other kind; later ones pick up
    // custom resources defined since.
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            seen = rx.recv() => {
                let Some(seen) = seen else { return };
                gc.apply(seen, &mut dirty);
                while let Ok(more) = rx.try_recv() {
                    gc.apply(more, &mut dirty);
                }
            }
            _ = retry_tick.tick() => dirty.append(&mut retry),
            _ = resync.tick() => {
                match other_kinds(&client, &followed).await {
                    Ok(kinds) => {
                        for res in kinds {
                            followed.push(res.clone());
                            track_other(client.clone(), res, tx.clone()).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "collector discovery failed; retrying"),
                }
                dirty.extend(gc.nodes.values().filter(|n| !n.owners.is_empty() || n.deleting).map(|n| n.uid.clone()));
                dirty.extend(gc.remote.keys().cloned());
            }
        }
        while let Some(uid) = dirty.pop_first() {
            if let Err(error) = gc.process(&uid).await {
                tracing::debug!(%uid, %error, "garbage collection step failed; retrying");
                retry.insert(uid);
            }
            // Take in what happened meanwhile before the next step.
            while let Ok(more) = rx.try_recv() {
                gc.apply(more, &mut dirty);
            }
        }
    }
}
