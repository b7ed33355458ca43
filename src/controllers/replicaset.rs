//! ReplicaSet and ReplicationController controller (one loop per kind,
//! the same logic): as many active pods as `spec.replicas`, adopted and
//! released by selector through controller references, created in
//! slow-start batches, with status counts and events as upstream.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use super::events::{EventType, Recorder};
use super::expectations::Expectations;
use super::informers::{Informable, Informers};
use super::retry::{self, Error};
use super::{pods, writes};

/// Upstream's cap on pods created or deleted in one sync.
const BURST: usize = 500;

/// What the loop needs of a replicated kind: ReplicaSets select with a
/// label selector, ReplicationControllers with equality on a map; their
/// status has the same fields.
pub trait Replicated:
    Informable + Resource<Scope = NamespaceResourceScope> + serde::Serialize
{
    fn replicas(&self) -> i32;
    fn selects(&self, pod: &Pod) -> bool;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    /// The status, read as a ReplicaSet's (the fields are the same).
    fn replica_status(&self) -> Option<ReplicaSetStatus>;
}

impl Replicated for ReplicaSet {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selects(&self, pod: &Pod) -> bool {
        self.spec
            .as_ref()
            .is_some_and(|s| pods::selects(&s.selector, pod.metadata.labels.as_ref()))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        self.status.clone()
    }
}

impl Replicated for ReplicationController {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selects(&self, pod: &Pod) -> bool {
        let Some(sel) = self.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return false;
        };
        let labels = pod.metadata.labels.as_ref();
        !sel.is_empty()
            && sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        let status = serde_json::to_value(self.status.as_ref()?).ok()?;
        serde_json::from_value(status).ok()
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Expectations,
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_default();
    tracing::debug!(kind = %K::kind(&()), namespace = %ns, name = %rs.name_any(), "syncing");
    let settled = ctx
        .expectations
        .settled(&rs.uid().unwrap_or_default(), &ns, &ctx.pods);
    let owned = pods::claim(&ctx.client, &ctx.pods, &*rs, |p| rs.selects(p)).await?;
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::is_active(p))
        .collect();
    let want = usize::try_from(rs.replicas()).unwrap_or(0);
    let mut failure = None;
    if settled && rs.meta().deletion_timestamp.is_none() {
        if active.len() < want {
            failure = create_pods(&*rs, &ctx, &ns, want - active.len()).await;
        } else if active.len() > want {
            delete_pods(&*rs, &ctx, &ns, active.clone(), active.len() - want).await?;
        }
    }
    let requeue = update_status(&*rs, &ctx, &owned, failure.as_deref()).await?;
    Ok(match requeue {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1) as u64)),
        None if !settled => Action::requeue(Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

/// Creates up to `count` pods in batches of 1, 2, 4, … so a template that
/// cannot be created fails once, not `count` times. Returns the failure
/// message, if any.
async fn create_pods<K: Replicated>(rs: &K, ctx: &Ctx, ns: &str, count: usize) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let template = rs.template().cloned().unwrap_or_default();
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
        let results =
            futures::future::join_all((0..n).map(|_| pods::create(&api, &ctx.recorder, rs, &pod)))
                .await;
        for result in results {
            match result {
                Ok(name) => {
                    created.insert(name);
                }
                Err(e) => failure = Some(writes::message(&e)),
            }
        }
        left -= n;
        batch *= 2;
    }
    ctx.expectations
        .expect(&rs.uid().unwrap_or_default(), created, HashSet::new());
    failure
}

async fn delete_pods<K: Replicated>(
    rs: &K,
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
async fn update_status<K: Replicated>(
    rs: &K,
    ctx: &Ctx,
    owned: &[Arc<Pod>],
    failure: Option<&str>,
) -> Result<Option<i64>, Error> {
    let min_ready = rs.min_ready_seconds();
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut status = ReplicaSetStatus {
        observed_generation: rs.meta().generation,
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
    let old_status = rs.replica_status().unwrap_or_default();
    let old_conditions = old_status.conditions.clone();
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
        let old = old_status;
        let mut cmp = status.clone();
        // A standing failure keeps its first transition time.
        if failure.is_some() && old_conditions.is_some() {
            cmp.conditions = old_conditions.clone();
        }
        old != cmp || (failure.is_none() && old_conditions.is_some())
    };
    if changed {
        writes::patch_status(&ctx.client, rs, &status).await?;
    }
    Ok(next)
}

/// Runs the controller of one replicated kind until the process ends.
pub async fn run<K: Replicated>(informers: Informers, component: &str) {
    let client = informers.client();
    let sets = informers.get::<K>();
    let pod_informer = informers.get::<Pod>();
    sets.ready().await;
    pod_informer.ready().await;
    let set_store = sets.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        recorder: Recorder::new(client, component),
        expectations: Expectations::default(),
    });
    let lookup = set_store.clone();
    Controller::for_shared_stream(sets.changes(), set_store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            pods::owners_of(&lookup, &pod.metadata, |rs: &K| rs.selects(&pod))
        })
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}
