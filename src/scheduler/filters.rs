//! Filter plugins: can this pod run on this node? Each answers like the
//! upstream plugin of the same name, with its reason strings, which the
//! FailedScheduling message counts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};

use super::interpod;
use super::snapshot::{NodeInfo, PodInfo, Snapshot};
use super::spread;

/// Why a node does not fit. Unresolvable reasons cannot be fixed by
/// preempting pods (upstream's UnschedulableAndUnresolvable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub reasons: Vec<String>,
    pub resolvable: bool,
}

impl Unfit {
    pub fn resolvable(reason: impl Into<String>) -> Self {
        Unfit {
            reasons: vec![reason.into()],
            resolvable: true,
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Unfit {
            reasons: vec![reason.into()],
            resolvable: false,
        }
    }
}

pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Every filter in upstream's order; the first that fails decides.
pub fn run(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> Result<(), Unfit> {
    node_unschedulable(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    resources_fit(pod, node)?;
    volume_node_affinity(pod, node)?;
    spread::filter(pod, node, snap)?;
    interpod::filter(pod, node, snap)
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let cordoned = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taint = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if cordoned && !tolerations(pod).iter().any(|t| tolerates(t, &taint)) {
        return Err(Unfit::unresolvable("node(s) were unschedulable"));
    }
    Ok(())
}

/// Whether one toleration tolerates one taint (upstream's ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let tols = tolerations(pod);
    let untolerated = taints(node).iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tols.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        Some(taint) => Err(Unfit::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ))),
        None => Ok(()),
    }
}

fn requirement_matches(
    r: &NodeSelectorRequirement,
    value: impl Fn(&str) -> Option<String>,
) -> bool {
    let v = value(&r.key);
    let values = r.values.as_deref().unwrap_or(&[]);
    let as_int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| values.contains(&v)),
        "NotIn" => v.is_none_or(|v| !values.contains(&v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                v.as_deref().and_then(as_int),
                values.first().and_then(|s| as_int(s)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// A term matches when all its requirements do; an empty term matches
/// nothing, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, |k| node.label(k).map(str::to_string)))
        && fields.iter().all(|r| {
            requirement_matches(r, |k| {
                (k == "metadata.name").then(|| node.name().to_string())
            })
        })
}

fn selector_matches(sel: &NodeSelector, node: &NodeInfo) -> bool {
    sel.node_selector_terms
        .iter()
        .any(|t| term_matches(t, node))
}

/// nodeSelector and required node affinity both hold.
pub fn matches_node_selector(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = &pod.pod.spec else {
        return true;
    };
    let empty = BTreeMap::new();
    let labels = node.labels().unwrap_or(&empty);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok && required.is_none_or(|r| selector_matches(r, node))
}

/// VolumeBinding's check for bound claims: a local volume lives on the
/// nodes its node affinity names.
pub fn volume_node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if pod
        .volume_affinity
        .iter()
        .all(|sel| selector_matches(sel, node))
    {
        Ok(())
    } else {
        Err(Unfit::unresolvable(
            "node(s) had volume node affinity conflict",
        ))
    }
}

pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if matches_node_selector(pod, node) {
        Ok(())
    } else {
        Err(Unfit::unresolvable(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}

pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let wanted = pod.host_ports();
    if wanted.is_empty() {
        return Ok(());
    }
    let conflict = |a: &(String, String, i32), b: &(String, String, i32)| {
        a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
    };
    let taken = node
        .pods
        .iter()
        .flat_map(|p| p.host_ports())
        .any(|used| wanted.iter().any(|w| conflict(w, &used)));
    if taken {
        Err(Unfit::resolvable(
            "node(s) didn't have free ports for the requested pod ports",
        ))
    } else {
        Ok(())
    }
}

/// Requests against allocatable minus what bound pods request, and the
/// node's pod count. Every short resource is a reason of its own.
pub fn resources_fit(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let mut reasons = Vec::new();
    let max_pods = node.allocatable.get("pods").copied().unwrap_or(0) / 1_000_000_000;
    if node.pods.len() as i128 + 1 > max_pods {
        reasons.push("Too many pods".to_string());
    }
    for (name, want) in &pod.requests {
        if *want <= 0 || name == "pods" {
            continue;
        }
        let free = node.allocatable.get(name).copied().unwrap_or(0)
            - node.requested.get(name).copied().unwrap_or(0);
        if *want > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Unfit {
            reasons,
            resolvable: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_refuse_unless_tolerated() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        let p = pod(json!({}));
        assert_eq!(
            node_unschedulable(&p, &n),
            Err(Unfit::unresolvable("node(s) were unschedulable"))
        );
        let p = pod(json!({"tolerations": [{"key": UNSCHEDULABLE_TAINT, "operator": "Exists"}]}));
        assert!(node_unschedulable(&p, &n).is_ok());
    }

    #[test]
    fn taints_need_tolerations() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"}]}}));
        let e = taint_toleration(&pod(json!({})), &n).expect_err("tainted");
        assert_eq!(
            e.reasons,
            ["node(s) had untolerated taint {dedicated: gpu}"]
        );
        let ok = pod(
            json!({"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert!(taint_toleration(&ok, &n).is_ok());
        let wrong = pod(json!({"tolerations": [{"key": "dedicated", "value": "cpu"}]}));
        assert!(taint_toleration(&wrong, &n).is_err());
        let all = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(taint_toleration(&all, &n).is_ok());
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(json!({"metadata": {"name": "n", "labels": {"disk": "ssd", "gen": "5"}}}));
        assert!(node_affinity(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &n).is_ok());
        assert!(node_affinity(&pod(json!({"nodeSelector": {"disk": "hdd"}})), &n).is_err());
        let aff = |op: &str, vals: serde_json::Value| {
            pod(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gen", "operator": op, "values": vals}]}]}}}}),
            )
        };
        assert!(node_affinity(&aff("Gt", json!(["4"])), &n).is_ok());
        assert!(node_affinity(&aff("Lt", json!(["4"])), &n).is_err());
        assert!(node_affinity(&aff("NotIn", json!(["5"])), &n).is_err());
        let by_name = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}}}),
        );
        assert!(node_affinity(&by_name, &n).is_ok());
    }

    #[test]
    fn bound_volumes_keep_pods_on_their_nodes() {
        let n = node(json!({"metadata": {"name": "n", "labels": {"disk": "ssd"}}}));
        let mut p = pod(json!({}));
        assert!(volume_node_affinity(&p, &n).is_ok());
        let sel = |v: &str| {
            serde_json::from_value(json!({"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": [v]}]}]}))
            .unwrap()
        };
        p.volume_affinity = vec![sel("ssd")];
        assert!(volume_node_affinity(&p, &n).is_ok());
        p.volume_affinity.push(sel("hdd"));
        assert!(volume_node_affinity(&p, &n).is_err());
    }

    #[test]
    fn resources_and_pod_count() {
        let mut n = node(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2"}}}),
        );
        let big = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"}}}]}),
        );
        let e = resources_fit(&big, &n).expect_err("too big");
        assert_eq!(e.reasons, ["Insufficient cpu", "Insufficient memory"]);
        let small =
            pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "600m"}}}]}));
        assert!(resources_fit(&small, &n).is_ok());
        n.add_pod(std::sync::Arc::new(small));
        let again =
            pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "600m"}}}]}));
        assert_eq!(
            resources_fit(&again, &n).expect_err("full").reasons,
            ["Insufficient cpu"]
        );
        n.add_pod(std::sync::Arc::new(pod(json!({}))));
        assert_eq!(
            resources_fit(&pod(json!({})), &n)
                .expect_err("count")
                .reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn host_ports_conflict() {
        let mut n = node(json!({"metadata": {"name": "n"}}));
        let web = |ip: &str| {
            pod(
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": ip}]}]}),
            )
        };
        n.add_pod(std::sync::Arc::new(web("10.0.0.1")));
        assert!(node_ports(&web("10.0.0.2"), &n).is_ok());
        assert!(node_ports(&web(""), &n).is_err());
    }
}
