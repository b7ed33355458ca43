//! Node lifecycle: a node whose kubelet stopped renewing its Lease (and
//! posting status) for the grace period becomes Ready=Unknown with the
//! unreachable taints, as upstream's node-lifecycle-controller does; once
//! its kubelet reports Ready again the taints go. Pressure conditions the
//! kubelet reports become NoSchedule taints (upstream's taint-by-condition).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::informers::Informers;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Conditions that keep new pods away while True, and their taints.
const CONDITION_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];
const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
const NEVER_MESSAGE: &str = "Kubelet never posted node status.";
/// The conditions a kubelet posts, set Unknown when it goes silent.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Upstream's --node-monitor-grace-period default.
const DEFAULT_GRACE: Duration = Duration::from_secs(40);

/// The grace period; KONE_NODE_MONITOR_GRACE_SECS shortens it for tests.
fn grace() -> Duration {
    std::env::var("KONE_NODE_MONITOR_GRACE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_GRACE)
}

fn ready_status(node: &Node) -> Option<&str> {
    condition_status(node, "Ready")
}

fn condition_status<'a>(node: &'a Node, kind: &str) -> Option<&'a str> {
    node.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// The last sign of life: the Lease's renewTime or the Ready condition's
/// heartbeat, whichever is later (the node's creation if neither exists).
fn last_heard(node: &Node, leases: &Store<Lease>) -> Option<Timestamp> {
    let lease = leases
        .get(&ObjectRef::new(&node.name_any()).within("kube-node-lease"))
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let heartbeat = node
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [lease, heartbeat, created].into_iter().flatten().max()
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// The taints the node should carry for its Ready status: unreachable for
/// Unknown, not-ready for False, neither for True; and one NoSchedule taint
/// per pressure condition that is True.
fn wanted_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let key = match ready_status(node) {
        Some("Unknown") => Some(UNREACHABLE),
        Some("False") => Some(NOT_READY),
        _ => None,
    };
    let mut out: Vec<Taint> = taints(node)
        .into_iter()
        .filter(|t| t.key != UNREACHABLE && t.key != NOT_READY || Some(t.key.as_str()) == key)
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    for (kind, key) in CONDITION_TAINTS {
        let under = condition_status(node, kind) == Some("True");
        let has = out.iter().any(|t| t.key == key && t.effect == "NoSchedule");
        if under && !has {
            out.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                time_added: None,
                value: None,
            });
        } else if !under {
            out.retain(|t| t.key != key);
        }
    }
    out
}

/// The kubelet's four conditions as Unknown: those it posted keep their
/// heartbeat; those it never posted appear, heard of at the node's
/// creation (upstream's tryUpdateNodeHealth).
fn unknown_conditions(node: &Node, now: Timestamp) -> Vec<NodeCondition> {
    let posted: Vec<&NodeCondition> = node
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .collect();
    KUBELET_CONDITIONS
        .iter()
        .map(|type_| match posted.iter().find(|c| c.type_ == *type_) {
            Some(c) => NodeCondition {
                status: "Unknown".into(),
                reason: Some("NodeStatusUnknown".into()),
                message: Some(UNKNOWN_MESSAGE.into()),
                last_transition_time: Some(Time(now)),
                ..(*c).clone()
            },
            None => NodeCondition {
                type_: type_.to_string(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some(NEVER_MESSAGE.into()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            },
        })
        .collect()
}

pub async fn run(informers: Informers) {
    let client = informers.client();
    let nodes = informers.get::<Node>();
    let leases = informers.get::<Lease>();
    nodes.ready().await;
    leases.ready().await;
    let (nodes, leases) = (nodes.store(), leases.store());
    let grace = grace();
    let api: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(
        (grace / 8).clamp(Duration::from_millis(500), Duration::from_secs(5)),
    );
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        for node in nodes.state() {
            let name = node.name_any();
            let stale = last_heard(&node, &leases)
                .is_none_or(|t| now.duration_since(t).as_secs_f64() > grace.as_secs_f64());
            if stale && ready_status(&node) != Some("Unknown") {
                let conditions = unknown_conditions(&node, now);
                let patch = json!({"status": {"conditions": conditions}});
                match api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(node = %name, "node stopped posting status; Ready=Unknown")
                    }
                    Err(error) => {
                        tracing::info!(node = %name, %error, "could not mark the node Unknown")
                    }
                }
                continue;
            }
            let want = wanted_taints(&node, now);
            let have = taints(&node);
            let same = want.len() == have.len()
                && want
                    .iter()
                    .all(|w| have.iter().any(|h| h.key == w.key && h.effect == w.effect));
            if !same {
                let patch = json!({"spec": {"taints": want}});
                if let Err(error) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::info!(node = %name, %error, "could not update the node's taints");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
        )
        .expect("node")
    }

    #[test]
    fn taints_follow_readiness() {
        let now = Timestamp::now();
        let keys = |n: &Node| {
            let mut k: Vec<String> = wanted_taints(n, now)
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            k.sort();
            k
        };
        let other = json!([{"key": "x", "effect": "NoSchedule"}]);
        assert_eq!(
            keys(&node("Unknown", other.clone())),
            [
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
                "x:NoSchedule"
            ]
        );
        assert_eq!(
            keys(&node(
                "True",
                json!([{"key": UNREACHABLE, "effect": "NoSchedule"}, {"key": "x", "effect": "NoSchedule"}])
            )),
            ["x:NoSchedule"]
        );
        assert_eq!(keys(&node("False", json!([]))).len(), 2);
    }

    #[test]
    fn silent_kubelets_conditions_become_unknown() {
        let now = Timestamp::now();
        let never: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("node");
        let c = unknown_conditions(&never, now);
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, KUBELET_CONDITIONS);
        assert!(c.iter().all(
            |c| c.status == "Unknown" && c.reason.as_deref() == Some("NodeStatusNeverUpdated")
        ));
        let posted = unknown_conditions(&node("True", json!([])), now);
        assert_eq!(posted[0].reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(posted[1].reason.as_deref(), Some("NodeStatusNeverUpdated"));
    }

    #[test]
    fn pressure_conditions_become_no_schedule_taints() {
        let now = Timestamp::now();
        let with = |pressure: &str, taints: serde_json::Value| -> Vec<String> {
            let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": pressure}]}}))
            .expect("node");
            wanted_taints(&n, now)
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        };
        assert_eq!(
            with("True", json!([])),
            ["node.kubernetes.io/memory-pressure:NoSchedule"]
        );
        let tainted =
            json!([{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]);
        assert!(with("False", tainted).is_empty());
    }
}
