//! PodTopologySpread: DoNotSchedule constraints as a filter, ScheduleAnyway
//! ones as a score. Domains are the values of the topology key on nodes
//! the pod could go to (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore:
//! upstream's defaults).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::filters::{self, Unfit};
use super::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::api::labels::LabelSelector;

fn constraints(pod: &PodInfo) -> &[TopologySpreadConstraint] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[])
}

fn selector_of(c: &TopologySpreadConstraint) -> LabelSelector {
    c.label_selector
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|s| LabelSelector::from_label_selector_json(&s).ok())
        .unwrap_or_else(LabelSelector::nothing)
}

fn labels_json(pod: &PodInfo) -> serde_json::Map<String, serde_json::Value> {
    pod.labels()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// Matching pods per domain of `c`'s topology key.
fn counts(pod: &PodInfo, c: &TopologySpreadConstraint, snap: &Snapshot) -> BTreeMap<String, i64> {
    let sel = selector_of(c);
    let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
    let mut counts = BTreeMap::new();
    for n in &snap.nodes {
        let Some(domain) = n.label(&c.topology_key) else {
            continue;
        };
        if honor_affinity && !filters::matches_node_selector(pod, n) {
            continue;
        }
        let matching = n
            .pods
            .iter()
            .filter(|q| {
                q.namespace() == pod.namespace()
                    && q.pod.metadata.deletion_timestamp.is_none()
                    && sel.matches(Some(&labels_json(q)))
            })
            .count() as i64;
        *counts.entry(domain.to_string()).or_insert(0) += matching;
    }
    counts
}

pub fn filter(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> Result<(), Unfit> {
    for c in constraints(pod) {
        if c.when_unsatisfiable != "DoNotSchedule" {
            continue;
        }
        let Some(domain) = node.label(&c.topology_key) else {
            return Err(Unfit::unresolvable(
                "node(s) didn't match pod topology spread constraints (missing required label)",
            ));
        };
        let counts = counts(pod, c, snap);
        let domains = counts.len() as i32;
        let min = if domains < c.min_domains.unwrap_or(1) {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        let own = i64::from(selector_of(c).matches(Some(&labels_json(pod))));
        let here = counts.get(domain).copied().unwrap_or(0);
        if here + own - min > i64::from(c.max_skew) {
            return Err(Unfit::resolvable(
                "node(s) didn't match pod topology spread constraints",
            ));
        }
    }
    Ok(())
}

/// ScheduleAnyway constraints: fewer matching pods in the node's domain is
/// better (raw: minus the count; normalized by the caller).
pub fn score(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
    constraints(pod)
        .iter()
        .filter(|c| c.when_unsatisfiable == "ScheduleAnyway")
        .map(|c| match node.label(&c.topology_key) {
            Some(d) => -counts(pod, c, snap).get(d).copied().unwrap_or(0),
            None => 0,
        })
        .sum()
}

pub fn has_soft(pod: &PodInfo) -> bool {
    constraints(pod)
        .iter()
        .any(|c| c.when_unsatisfiable == "ScheduleAnyway")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod_in, snapshot};
    use serde_json::json;

    #[test]
    fn max_skew_across_zones() {
        let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
        let n = |name: &str, zone: &str| {
            node(json!({"metadata": {"name": name, "labels": {"zone": zone}}}))
        };
        let web = |name: &str| pod_in(name, json!({"app": "web"}), json!({}));
        let snap = snapshot(
            vec![
                n("a1", "a"),
                n("b1", "b"),
                node(json!({"metadata": {"name": "x"}})),
            ],
            vec![("a1", web("w1"))],
        );
        let incoming = pod_in("w2", json!({"app": "web"}), spread);
        assert!(filter(&incoming, &snap.nodes[0], &snap).is_err());
        assert!(filter(&incoming, &snap.nodes[1], &snap).is_ok());
        let e = filter(&incoming, &snap.nodes[2], &snap).expect_err("no zone label");
        assert!(!e.resolvable);
    }
}
