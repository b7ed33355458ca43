//! ReplicaSet controller: as many active pods as `spec.replicas`, adopted
//! and released by selector through controller references, created in
//! slow-start batches, with status counts and events as upstream.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::expectations::Expectations;
use super::informers::Informers;
use super::pods;

/// Upstream's cap on pods created or deleted in one sync.
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Expectations,
}

fn selector_matches(rs: &ReplicaSet, pod: &Pod) -> bool {
    rs.spec
        .as_ref()
        .is_some_and(|s| pods::selects(&s.selector, pod.metadata.labels.as_ref()))
}

/// The pods this ReplicaSet controls after adopting orphans that match its
/// selector and releasing its pods that no longer do.
async fn claim(rs: &ReplicaSet, ctx: &Ctx, ns: &str) -> Result<Vec<Arc<Pod>>, Error> {
    let uid = rs.uid().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut owned = Vec::new();
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns) {
            continue;
        }
        let matches = selector_matches(rs, &pod);
        match pods::controller_of(&pod.metadata) {
            Some(c) if c.uid == uid => {
                if matches {
                    owned.push(pod);
                } else {
                    let keep: Vec<_> = pod
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    patch_owners(&api, &pod, json!(keep)).await?;
                }
            }
            None if matches
                && rs.metadata.deletion_timestamp.is_none()
                && pod.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = pod.owner_references().to_vec();
                refs.push(pods::controller_ref(rs));
                if patch_owners(&api, &pod, json!(refs)).await? {
                    owned.push(pod);
                }
            }
            _ => {}
        }
    }
    Ok(owned)
}

/// Rewrites a pod's owner references if it is unchanged since read; false
/// if it changed or went away (the next sync sees it anew).
async fn patch_owners(api: &Api<Pod>, pod: &Pod, refs: serde_json::Value) -> Result<bool, Error> {
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": pod.resource_version(),
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    tracing::debug!(namespace = %ns, name = %rs.name_any(), "syncing replicaset");
    let settled = ctx
        .expectations
        .settled(&rs.uid().unwrap_or_default(), &ns, &ctx.pods);
    let owned = claim(&rs, &ctx, &ns).await?;
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::is_active(p))
        .collect();
    let spec = rs.spec.clone().unwrap_or_default();
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let mut failure = None;
    if settled && rs.metadata.deletion_timestamp.is_none() {
        if active.len() < want {
            failure = create_pods(&rs, &ctx, &ns, want - active.len()).await;
        } else if active.len() > want {
            delete_pods(&rs, &ctx, &ns, active.clone(), active.len() - want).await?;
        }
    }
    let requeue = update_status(&rs, &ctx, &ns, &owned, failure.as_deref()).await?;
    Ok(match requeue {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1) as u64)),
        None if !settled => Action::requeue(Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

/// Creates up to `count` pods in batches of 1, 2, 4, … so a template that
/// cannot be created fails once, not `count` times. Returns the failure
/// message, if any.
async fn create_pods(rs: &ReplicaSet, ctx: &Ctx, ns: &str, count: usize) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let template = rs.spec.as_ref()?.template.clone().unwrap_or_default();
    let pod = pods::from_template(
        &template,
        pods::controller_ref(rs),
        &format!("{}-", rs.name_any()),
    );
    let mut left = count.min(BURST);
    let mut batch = 1;
    let mut created = HashSet::new();
    let mut failure = None;
    while left > 0 && failure.is_none() {
        let n = batch.min(left);
        let pp = PostParams::default();
        let results = futures::future::join_all((0..n).map(|_| api.create(&pp, &pod))).await;
        for result in results {
            match result {
                Ok(p) => {
                    let name = p.name_any();
                    ctx.recorder
                        .record(
                            rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        )
                        .await;
                    created.insert(name);
                }
                Err(e) => {
                    let msg = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        other => other.to_string(),
                    };
                    ctx.recorder
                        .record(
                            rs,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {msg}"),
                        )
                        .await;
                    failure = Some(msg);
                }
            }
        }
        left -= n;
        batch *= 2;
    }
    ctx.expectations
        .expect(&rs.uid().unwrap_or_default(), created, HashSet::new());
    failure
}

async fn delete_pods(
    rs: &ReplicaSet,
    ctx: &Ctx,
    ns: &str,
    mut active: Vec<&Pod>,
    count: usize,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    pods::sort_for_deletion(&mut active);
    let victims = &active[..count.min(BURST).min(active.len())];
    let mut deleted = HashSet::new();
    let results = futures::future::join_all(victims.iter().map(|p| {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = p.name_any();
        let api = api.clone();
        async move { api.delete(&name, &params).await.map(|_| name) }
    }))
    .await;
    for (pod, result) in victims.iter().zip(results) {
        match result {
            Ok(name) => {
                ctx.recorder
                    .record(
                        rs,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
                deleted.insert(pod.uid().unwrap_or_default());
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.expectations
        .expect(&rs.uid().unwrap_or_default(), HashSet::new(), deleted);
    Ok(())
}

/// Writes the counts; returns when to look again for a pod about to
/// become available.
async fn update_status(
    rs: &ReplicaSet,
    ctx: &Ctx,
    ns: &str,
    owned: &[Arc<Pod>],
    failure: Option<&str>,
) -> Result<Option<i64>, Error> {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut status = ReplicaSetStatus {
        observed_generation: rs.metadata.generation,
        ..ReplicaSetStatus::default()
    };
    let mut next = None::<i64>;
    for pod in owned.iter().filter(|p| pods::is_active(p)) {
        status.replicas += 1;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            *status.fully_labeled_replicas.get_or_insert(0) += 1;
        }
        if pods::is_ready(pod) {
            *status.ready_replicas.get_or_insert(0) += 1;
        }
        match pods::availability(pod, min_ready, now) {
            (true, _) => *status.available_replicas.get_or_insert(0) += 1,
            (false, Some(left)) => next = Some(next.map_or(left, |n| n.min(left))),
            (false, None) => {}
        }
    }
    status.ready_replicas.get_or_insert(0);
    status.available_replicas.get_or_insert(0);
    status.fully_labeled_replicas.get_or_insert(0);
    let old_conditions = rs.status.as_ref().and_then(|s| s.conditions.clone());
    status.conditions = failure.map(|msg| {
        vec![k8s_openapi::api::apps::v1::ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(msg.to_string()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        }]
    });
    let changed = {
        let old = rs.status.clone().unwrap_or_default();
        let mut cmp = status.clone();
        // A standing failure keeps its first transition time.
        if failure.is_some() && old_conditions.is_some() {
            cmp.conditions = old_conditions.clone();
        }
        old != cmp || (failure.is_none() && old_conditions.is_some())
    };
    if changed {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({"status": status});
        match api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(next)
}

fn error_policy(_rs: Arc<ReplicaSet>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(%error, "replicaset sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the ReplicaSet controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let sets = informers.get::<ReplicaSet>();
    let pod_informer = informers.get::<Pod>();
    sets.ready().await;
    pod_informer.ready().await;
    let set_store = sets.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        recorder: Recorder::new(client, "replicaset-controller"),
        expectations: Expectations::default(),
    });
    let lookup = set_store.clone();
    Controller::for_shared_stream(sets.changes(), set_store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            owners_of(&lookup, &pod)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// The ReplicaSets a pod change concerns: its controller, or for an orphan
/// every set whose selector matches it.
fn owners_of(sets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match pods::controller_of(&pod.metadata) {
        Some(c) if c.kind == "ReplicaSet" && c.api_version == "apps/v1" => {
            vec![ObjectRef::new(&c.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => sets
            .state()
            .iter()
            .filter(|rs| {
                rs.namespace().as_deref() == Some(ns.as_str()) && selector_matches(rs, pod)
            })
            .map(|rs| ObjectRef::from_obj(&**rs))
            .collect(),
    }
}
