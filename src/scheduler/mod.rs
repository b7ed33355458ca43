//! `default-scheduler`: binds pending pods to nodes through pods/binding.
//!
//! One task owns the queue and the decisions; it reads nodes and pods from
//! the shared informers, decides a batch against one snapshot (counting its
//! own decisions as it goes, and remembering them as "assumed" until the
//! informer shows the binding), and hands bindings, events and status
//! writes to small tasks so the API round trips overlap.

mod claims;
pub mod eligibility;
mod filters;
mod interpod;
mod message;
mod preemption;
mod queue;
pub mod resources;
mod scores;
mod snapshot;
mod spread;
#[cfg(test)]
mod testutil;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::controllers::events::{EventType, Recorder};
use crate::controllers::informers::Informers;
pub use filters::tolerates;
use filters::Unfit;
use queue::Queue;
use snapshot::{PodInfo, Snapshot};

pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Bindings in flight at once.
const MAX_BINDS: usize = 64;
/// Pods decided against one snapshot. Upstream decides one pod per
/// snapshot; a small batch keeps most of the saving of batching while
/// nodes that arrive during a burst (or bindings that fail) are seen by the
/// next batch, not after a whole queue has been judged without them.
const BATCH: usize = 64;

fn key_of(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Whether this scheduler should place the pod now.
fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && spec.scheduling_gates.as_ref().is_none_or(|g| g.is_empty())
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

type SchedulingView = (Option<serde_json::Value>, Option<BTreeMap<String, String>>);

/// What decides placement; a change in anything else (our own status
/// writes, say) is no reason to try again.
fn scheduling_view(pod: &Pod) -> SchedulingView {
    (
        pod.spec.as_ref().and_then(|s| serde_json::to_value(s).ok()),
        pod.metadata.labels.clone(),
    )
}

enum Outcome {
    Bound,
    Failed { key: String, uid: String },
}

struct Scheduler {
    client: Client,
    recorder: Recorder,
    pods: Store<Pod>,
    nodes: Store<Node>,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    namespaces: Store<Namespace>,
    queue: Queue,
    /// uid → (node, pod) for bindings the informer may not show yet.
    assumed: HashMap<String, (String, Arc<Pod>)>,
    /// Pending pods as last queued, to tell real changes from status noise.
    last_seen: HashMap<String, SchedulingView>,
    /// Bound pods seen, so a new one (affinity, spread) wakes parked pods once.
    bound: HashSet<String>,
    binds: Arc<Semaphore>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

pub async fn run(informers: Informers) {
    let client = informers.client();
    let pods = informers.get::<Pod>();
    let nodes = informers.get::<Node>();
    let namespaces = informers.get::<Namespace>();
    let claims = informers.get::<PersistentVolumeClaim>();
    let volumes = informers.get::<PersistentVolume>();
    pods.ready().await;
    nodes.ready().await;
    namespaces.ready().await;
    claims.ready().await;
    volumes.ready().await;
    let (outcomes, mut outcome_rx) = mpsc::unbounded_channel();
    let mut s = Scheduler {
        recorder: Recorder::new(client.clone(), SCHEDULER_NAME),
        client,
        pods: pods.store(),
        nodes: nodes.store(),
        namespaces: namespaces.store(),
        claims: claims.store(),
        volumes: volumes.store(),
        queue: Queue::default(),
        assumed: HashMap::new(),
        last_seen: HashMap::new(),
        bound: HashSet::new(),
        binds: Arc::new(Semaphore::new(MAX_BINDS)),
        outcomes,
    };
    let mut pod_changes = pods.changes().boxed();
    let mut node_changes = nodes.changes().boxed();
    tracing::info!(scheduler = SCHEDULER_NAME, "scheduler started");
    loop {
        let wake = tokio::time::Instant::from_std(s.queue.next_wake());
        tokio::select! {
            Some(p) = pod_changes.next() => s.on_pod(&p),
            Some(_) = node_changes.next() => s.queue.move_all(),
            Some(o) = outcome_rx.recv() => s.on_outcome(o),
            _ = tokio::time::sleep_until(wake) => {}
        }
        // Take everything already waiting before deciding, so a burst of
        // new pods is queued before the next batch is decided.
        while let Some(Some(p)) = pod_changes.next().now_or_never() {
            s.on_pod(&p);
        }
        while let Some(Some(_)) = node_changes.next().now_or_never() {
            s.queue.move_all();
        }
        while let Ok(o) = outcome_rx.try_recv() {
            s.on_outcome(o);
        }
        s.schedule_batch();
    }
}

impl Scheduler {
    fn on_pod(&mut self, pod: &Pod) {
        let key = key_of(pod);
        let uid = pod.uid().unwrap_or_default();
        let current = self.pods.get(&ObjectRef::from_obj(pod));
        let Some(current) = current.filter(|c| c.uid() == pod.uid()) else {
            // Deleted: whatever it held is free now.
            self.forget(&key, &uid);
            if self.bound.remove(&uid) {
                self.queue.move_all();
            }
            return;
        };
        if let Some(_node) = snapshot::node_of(&current) {
            self.forget(&key, &uid);
            let finished = matches!(
                current.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            if self.bound.insert(uid) || finished {
                self.queue.move_all();
            }
            return;
        }
        if !wants_scheduling(&current) {
            self.forget(&key, &uid);
            return;
        }
        let view = scheduling_view(&current);
        if self.last_seen.get(&key) == Some(&view) {
            return;
        }
        self.last_seen.insert(key.clone(), view);
        self.queue.add(&key);
    }

    fn forget(&mut self, key: &str, uid: &str) {
        self.queue.forget(key);
        self.last_seen.remove(key);
        self.assumed.remove(uid);
    }

    fn on_outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Bound => {}
            Outcome::Failed { key, uid } => {
                self.assumed.remove(&uid);
                self.queue.retry(&key);
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let namespace_labels = self
            .namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect();
        Snapshot::build(
            self.nodes.state(),
            self.pods.state(),
            &self.assumed,
            namespace_labels,
        )
    }

    fn schedule_batch(&mut self) {
        let batch = self.queue.pop_ready(BATCH);
        if batch.is_empty() {
            return;
        }
        let mut snap = self.snapshot();
        for key in batch {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let found = self.pods.get(&ObjectRef::new(name).within(ns));
            let Some(pod) = found.filter(|p| wants_scheduling(p)) else {
                self.queue.forget(&key);
                continue;
            };
            let mut info = PodInfo::new(pod.clone());
            info.volume_affinity = claims::volume_affinity(&pod, &self.claims, &self.volumes);
            match place(&info, &snap) {
                Ok(i) => {
                    let node = snap.nodes[i].name().to_string();
                    self.assumed
                        .insert(info.uid().to_string(), (node.clone(), pod.clone()));
                    snap.place(&node, Arc::new(info));
                    self.bind(key, pod, node);
                }
                Err(unfit) => {
                    let post = if preemption::in_progress(&info, &snap) {
                        None
                    } else {
                        match preemption::preempt(&info, &unfit, &mut snap) {
                            Ok(c) => {
                                self.preempt(pod.clone(), c);
                                None
                            }
                            Err(post) => Some(post),
                        }
                    };
                    let msg = message::fit_error(snap.nodes.len(), &unfit, post.as_deref());
                    tracing::debug!(pod = %key, reason = %msg, "pod is unschedulable");
                    self.queue.unschedulable(&key);
                    self.report_unschedulable(pod, msg);
                }
            }
        }
    }

    fn bind(&self, key: String, pod: Arc<Pod>, node: String) {
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        let binds = self.binds.clone();
        let outcomes = self.outcomes.clone();
        tokio::spawn(async move {
            let permit = binds.acquire().await;
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let uid = pod.uid().unwrap_or_default();
            if let Err(error) = claims::select_node(&client, &pod, &node).await {
                tracing::info!(pod = %key, %node, %error, "could not select the node for its claims");
            }
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let api: Api<Pod> = Api::namespaced(client, &ns);
            match api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => {
                    // The next binding need not wait for this one's event.
                    drop(permit);
                    tracing::debug!(pod = %key, %node, "bound");
                    recorder
                        .record(
                            &*pod,
                            EventType::Normal,
                            "Scheduled",
                            &format!("Successfully assigned {ns}/{name} to {node}"),
                        )
                        .await;
                    let _ = outcomes.send(Outcome::Bound);
                }
                Err(error) => {
                    tracing::info!(pod = %key, %node, %error, "binding failed; will retry");
                    let _ = outcomes.send(Outcome::Failed { key, uid });
                }
            }
        });
    }

    /// Evicts the victims and nominates the node for the preemptor, which
    /// waits (parked) until the victims are gone.
    fn preempt(&self, pod: Arc<Pod>, c: preemption::Candidate) {
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let uid = pod.uid().unwrap_or_default();
            for v in &c.victims {
                let msg = format!("Preempted by pod {uid} on node {}", c.node);
                recorder
                    .record(&*v.pod, EventType::Normal, "Preempted", &msg)
                    .await;
                let api: Api<Pod> = Api::namespaced(client.clone(), v.namespace());
                match api.delete(v.name(), &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::info!(victim = %v.name(), preemptor = %pod.name_any(), node = %c.node, "preempted")
                    }
                    Err(error) => tracing::info!(victim = %v.name(), %error, "could not preempt"),
                }
            }
            let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
            let patch = json!({"status": {"nominatedNodeName": c.node}});
            if let Err(error) = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                tracing::debug!(pod = %pod.name_any(), %error, "could not nominate a node");
            }
        });
    }

    /// A FailedScheduling event and PodScheduled=False on the pod.
    fn report_unschedulable(&self, pod: Arc<Pod>, msg: String) {
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            recorder
                .record(&*pod, EventType::Warning, "FailedScheduling", &msg)
                .await;
            let same = pod
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                        && c.message.as_deref() == Some(msg.as_str())
                });
            if same {
                return;
            }
            let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": msg, "lastProbeTime": null,
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            }]}});
            if let Err(error) = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                tracing::debug!(pod = %pod.name_any(), %error, "could not mark the pod unschedulable");
            }
        });
    }
}

/// Filters every node, then scores the feasible ones.
fn place(pod: &PodInfo, snap: &Snapshot) -> Result<usize, Vec<Unfit>> {
    let mut feasible = Vec::new();
    let mut unfit = Vec::new();
    for (i, node) in snap.nodes.iter().enumerate() {
        match filters::run(pod, node, snap) {
            Ok(()) => feasible.push(i),
            Err(u) => unfit.push(u),
        }
    }
    scores::pick(pod, &feasible, snap).ok_or(unfit)
}
