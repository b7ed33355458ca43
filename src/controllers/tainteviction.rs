//! Taint eviction (upstream's taint-eviction-controller, once the node
//! lifecycle controller's "taint manager"): a pod bound to a node with a
//! NoExecute taint it does not tolerate is deleted at once; one that
//! tolerates every such taint, some only for `tolerationSeconds`, is deleted
//! when the shortest of those runs out, counted from the taint's
//! `timeAdded`. A taint removed in time cancels the eviction.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

use super::events::{EventType, Recorder};
use super::informers::Informers;
use crate::scheduler::tolerates;

const COMPONENT: &str = "taint-eviction-controller";

/// When the pod must go: now, later, or never (it tolerates the taints).
#[derive(Debug, PartialEq)]
enum Verdict {
    Evict,
    At(Timestamp),
    Stay,
}

fn no_execute(node: &Node) -> Vec<&Taint> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// Upstream's getMinTolerationTime over the first toleration matching
/// each NoExecute taint: `added` gives each taint's start (its timeAdded,
/// else when first seen), so the deadline survives a restart.
fn verdict(
    taints: &[&Taint],
    tolerations: &[Toleration],
    added: impl FnMut(&Taint) -> Timestamp,
) -> Verdict {
    let mut added = added;
    let mut deadline: Option<Timestamp> = None;
    for taint in taints {
        let Some(used) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Verdict::Evict;
        };
        let Some(secs) = used.toleration_seconds else {
            continue;
        };
        if secs <= 0 {
            return Verdict::Evict;
        }
        let at = added(taint)
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap_or(Timestamp::MAX);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline.map_or(Verdict::Stay, Verdict::At)
}

pub async fn run(informers: Informers) {
    let client = informers.client();
    let recorder = Recorder::new(client.clone(), COMPONENT);
    let nodes = informers.get::<Node>();
    let pods = informers.get::<Pod>();
    nodes.ready().await;
    pods.ready().await;
    let mut node_changes = nodes.changes().boxed();
    let mut pod_changes = pods.changes().boxed();
    let (nodes, pods) = (nodes.store(), pods.store());
    // Taints without timeAdded count from when they were first seen.
    let mut first_seen: HashMap<(String, String), Timestamp> = HashMap::new();
    // Pods already asked to go; the watch shows their deletionTimestamp soon.
    let mut evicted: HashSet<String> = HashSet::new();
    let mut next: Option<Timestamp> = None;
    loop {
        let wait = next
            .map(|t| Timestamp::now().duration_until(t).unsigned_abs())
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            Some(_) = node_changes.next() => {}
            Some(_) = pod_changes.next() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        while let Some(Some(_)) = node_changes.next().now_or_never() {}
        while let Some(Some(_)) = pod_changes.next().now_or_never() {}

        let now = Timestamp::now();
        let tainted: HashMap<String, std::sync::Arc<Node>> = nodes
            .state()
            .into_iter()
            .filter(|n| !no_execute(n).is_empty())
            .map(|n| (n.name_any(), n))
            .collect();
        first_seen.retain(|(node, key), _| {
            tainted
                .get(node)
                .is_some_and(|n| no_execute(n).iter().any(|t| &t.key == key))
        });
        next = None;
        if tainted.is_empty() {
            evicted.clear();
            continue;
        }
        let mut live = HashSet::new();
        for pod in pods.state() {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| tainted.get(n))
            else {
                continue;
            };
            let uid = pod.uid().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            live.insert(uid.clone());
            if evicted.contains(&uid) {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or(&[]);
            let node_name = node.name_any();
            let taints = no_execute(node);
            let v = verdict(&taints, tolerations, |t| {
                t.time_added.as_ref().map(|t| t.0).unwrap_or_else(|| {
                    *first_seen
                        .entry((node_name.clone(), t.key.clone()))
                        .or_insert(now)
                })
            });
            let due = match v {
                Verdict::Evict => true,
                Verdict::At(t) if t <= now => true,
                Verdict::At(t) => {
                    next = Some(next.map_or(t, |n| n.min(t)));
                    false
                }
                Verdict::Stay => false,
            };
            if due {
                evicted.insert(uid);
                tokio::spawn(evict(client.clone(), recorder.clone(), pod));
            }
        }
        evicted.retain(|u| live.contains(u));
    }
}

/// Marks the pod with the DisruptionTarget condition, as upstream does
/// before deleting, then deletes it with its own grace period.
async fn evict(client: kube::Client, recorder: Recorder, pod: std::sync::Arc<Pod>) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    recorder
        .record(
            &*pod,
            EventType::Normal,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Timestamp::now().to_string(),
    }]}});
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(condition))
        .await
    {
        tracing::debug!(pod = %name, %error, "could not mark the pod as a disruption target");
    }
    let dp = DeleteParams {
        preconditions: pod.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "evicted for a NoExecute taint"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(error) => tracing::info!(pod = %name, %error, "could not evict the pod"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    #[test]
    fn shortest_toleration_decides() {
        let t0 = Timestamp::UNIX_EPOCH;
        let (a, b) = (taint("a"), taint("b"));
        let at = |s| Verdict::At(t0.checked_add(SignedDuration::from_secs(s)).expect("time"));
        assert_eq!(verdict(&[&a], &[], |_| t0), Verdict::Evict);
        assert_eq!(verdict(&[&a], &[tol("a", None)], |_| t0), Verdict::Stay);
        assert_eq!(verdict(&[&a], &[tol("a", Some(30))], |_| t0), at(30));
        assert_eq!(verdict(&[&a], &[tol("a", Some(0))], |_| t0), Verdict::Evict);
        // The first matching toleration is the one used.
        assert_eq!(
            verdict(&[&a], &[tol("a", None), tol("a", Some(30))], |_| t0),
            Verdict::Stay
        );
        assert_eq!(
            verdict(&[&a, &b], &[tol("a", Some(30)), tol("b", Some(10))], |_| t0),
            at(10)
        );
        assert_eq!(
            verdict(&[&a, &b], &[tol("a", Some(30))], |_| t0),
            Verdict::Evict
        );
    }
}
