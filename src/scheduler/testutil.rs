//! Builders for the scheduler's unit tests.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::snapshot::{NodeInfo, PodInfo, Snapshot};

pub fn node(v: Value) -> NodeInfo {
    let n: Node = serde_json::from_value(v).expect("node");
    let snap = Snapshot::build(vec![Arc::new(n)], vec![], &HashMap::new(), HashMap::new());
    snap.nodes.into_iter().next().expect("one node")
}

/// A pod in namespace `default` with this spec (containers defaulted).
pub fn pod(spec: Value) -> PodInfo {
    pod_in("p", json!({}), spec)
}

pub fn pod_in(name: &str, labels: Value, mut spec: Value) -> PodInfo {
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": labels},
        "spec": spec,
    }))
    .expect("pod");
    PodInfo::new(Arc::new(p))
}

/// A snapshot of `nodes` with pods placed on named nodes.
pub fn snapshot(nodes: Vec<NodeInfo>, pods: Vec<(&str, PodInfo)>) -> Snapshot {
    let mut snap = Snapshot::build(
        nodes.into_iter().map(|n| n.node).collect(),
        vec![],
        &HashMap::new(),
        HashMap::new(),
    );
    for (node, p) in pods {
        snap.place(node, Arc::new(p));
    }
    snap
}
