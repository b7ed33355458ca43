//! DefaultPreemption: when no node fits, find a node where evicting pods
//! of lower priority makes room, evicting as few and as unimportant pods
//! as possible.

use std::sync::Arc;

use super::filters::{self, Unfit};
use super::message;
use super::snapshot::{PodInfo, Snapshot};

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// A node and the pods to evict from it.
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

fn policy_never(pod: &PodInfo) -> bool {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never")
}

/// Whether an earlier preemption for this pod is still under way (victims
/// on its nominated node are terminating): then wait instead of evicting more.
pub fn in_progress(pod: &PodInfo, snap: &Snapshot) -> bool {
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    let Some(node) = nominated.and_then(|n| snap.node(n)) else {
        return false;
    };
    node.pods
        .iter()
        .any(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_some())
}

/// The victims on one node, or why there are none. The snapshot is left
/// as it was.
fn victims_on(pod: &PodInfo, node: usize, snap: &mut Snapshot) -> Option<Vec<Arc<PodInfo>>> {
    let name = snap.nodes[node].name().to_string();
    let mut lower: Vec<Arc<PodInfo>> = snap.nodes[node]
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    for v in &lower {
        snap.unplace(&name, v.uid());
    }
    if filters::run(pod, &snap.nodes[node], snap).is_err() {
        for v in lower {
            snap.place(&name, v);
        }
        return None;
    }
    // Reprieve the most important pods that can stay.
    lower.sort_by_key(|v| std::cmp::Reverse(v.priority));
    let mut victims = Vec::new();
    for v in lower {
        snap.place(&name, v.clone());
        if filters::run(pod, &snap.nodes[node], snap).is_err() {
            snap.unplace(&name, v.uid());
            victims.push(v);
        }
    }
    for v in &victims {
        snap.place(&name, v.clone());
    }
    Some(victims)
}

/// A candidate, or the "preemption: …" sentence for FailedScheduling.
/// `unfit` holds every node's filter result, in snapshot order.
pub fn preempt(pod: &PodInfo, unfit: &[Unfit], snap: &mut Snapshot) -> Result<Candidate, String> {
    if policy_never(pod) {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    let mut reasons = Vec::new();
    let mut best: Option<Candidate> = None;
    let rank = |c: &Candidate| {
        let top = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c.victims.iter().map(|v| i64::from(v.priority)).sum();
        (top, c.victims.len(), sum)
    };
    for (i, u) in unfit.iter().enumerate() {
        if !u.resolvable {
            reasons.push(NOT_HELPFUL.to_string());
            continue;
        }
        match victims_on(pod, i, snap) {
            None => reasons.push(NO_VICTIMS.to_string()),
            Some(victims) => {
                let c = Candidate {
                    node: snap.nodes[i].name().to_string(),
                    victims,
                };
                if best.as_ref().is_none_or(|b| rank(&c) < rank(b)) {
                    best = Some(c);
                }
            }
        }
    }
    best.ok_or_else(|| message::preemption_failed(snap.nodes.len(), reasons.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod_in, snapshot};
    use serde_json::json;

    fn cpu(name: &str, cpu: &str, priority: i32) -> PodInfo {
        pod_in(
            name,
            json!({}),
            json!({"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    #[test]
    fn evicts_the_fewest_lowest_pods() {
        let n = node(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "3", "pods": "10"}}}),
        );
        let mut snap = snapshot(
            vec![n],
            vec![
                ("n", cpu("low", "1", 0)),
                ("n", cpu("mid", "1", 5)),
                ("n", cpu("high", "500m", 100)),
            ],
        );
        let incoming = cpu("new", "1", 10);
        let unfit = vec![filters::run(&incoming, &snap.nodes[0], &snap).expect_err("full")];
        let c = preempt(&incoming, &unfit, &mut snap).expect("candidate");
        assert_eq!(c.node, "n");
        let names: Vec<&str> = c.victims.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["low"]);
        // The snapshot is as it was.
        assert_eq!(snap.nodes[0].pods.len(), 3);
    }

    #[test]
    fn nothing_lower_means_no_victims() {
        let n = node(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "1", "pods": "10"}}}),
        );
        let mut snap = snapshot(vec![n], vec![("n", cpu("a", "1", 10))]);
        let incoming = cpu("new", "1", 10);
        let unfit = vec![filters::run(&incoming, &snap.nodes[0], &snap).expect_err("full")];
        let e = preempt(&incoming, &unfit, &mut snap)
            .err()
            .expect("no candidate");
        assert_eq!(
            e,
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }
}
