//! InterPodAffinity: required and preferred pod affinity and anti-affinity
//! over topology domains (nodes sharing a label value).

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

use super::filters::Unfit;
use super::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::api::labels::LabelSelector;

fn selector(v: Option<&impl serde::Serialize>) -> LabelSelector {
    v.and_then(|s| serde_json::to_value(s).ok())
        .and_then(|s| LabelSelector::from_label_selector_json(&s).ok())
        .unwrap_or_else(LabelSelector::nothing)
}

fn to_json_labels(
    l: Option<&std::collections::BTreeMap<String, String>>,
) -> serde_json::Map<String, serde_json::Value> {
    l.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// Whether `term` (written in a pod of namespace `owner_ns`) selects `pod`.
fn selects(term: &PodAffinityTerm, owner_ns: &str, pod: &PodInfo, snap: &Snapshot) -> bool {
    let listed = term.namespaces.as_deref().unwrap_or(&[]);
    let ns = pod.namespace();
    let ns_ok = match &term.namespace_selector {
        None if listed.is_empty() => ns == owner_ns,
        None => listed.iter().any(|n| n == ns),
        Some(sel) => {
            listed.iter().any(|n| n == ns)
                || selector(Some(sel)).matches(Some(&to_json_labels(snap.namespace_labels.get(ns))))
        }
    };
    ns_ok && selector(term.label_selector.as_ref()).matches(Some(&to_json_labels(pod.labels())))
}

fn same_domain(a: &NodeInfo, b: &NodeInfo, key: &str) -> bool {
    a.label(key).is_some() && a.label(key) == b.label(key)
}

fn required_terms(pod: &PodInfo, anti: bool) -> &[PodAffinityTerm] {
    let aff = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        aff.and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
    } else {
        aff.and_then(|a| a.pod_affinity.as_ref()).and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
    };
    terms.unwrap_or(&[])
}

fn preferred_terms(pod: &PodInfo, anti: bool) -> &[WeightedPodAffinityTerm] {
    let aff = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        aff.and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
    } else {
        aff.and_then(|a| a.pod_affinity.as_ref()).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
    };
    terms.unwrap_or(&[])
}

/// Whether a bound pod carries required anti-affinity terms (the snapshot
/// keeps these apart so the common case costs nothing).
pub fn has_required_anti_affinity(pod: &PodInfo) -> bool {
    !required_terms(pod, true).is_empty()
}

pub fn filter(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> Result<(), Unfit> {
    // Existing pods whose anti-affinity rules out the incoming pod.
    for (other_node, other) in &snap.anti_affinity_pods {
        let Some(m) = snap.node(other_node) else {
            continue;
        };
        let blocked = required_terms(other, true).iter().any(|t| {
            same_domain(node, m, &t.topology_key) && selects(t, other.namespace(), pod, snap)
        });
        if blocked {
            return Err(Unfit::resolvable(
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
    }
    let anti = required_terms(pod, true);
    let affinity = required_terms(pod, false);
    if anti.is_empty() && affinity.is_empty() {
        return Ok(());
    }
    let matching_in_domain = |t: &PodAffinityTerm| {
        snap.nodes.iter().any(|m| {
            same_domain(node, m, &t.topology_key)
                && m.pods.iter().any(|q| selects(t, pod.namespace(), q, snap))
        })
    };
    if anti.iter().any(matching_in_domain) {
        return Err(Unfit::resolvable(
            "node(s) didn't match pod anti-affinity rules",
        ));
    }
    if affinity.iter().all(matching_in_domain) {
        return Ok(());
    }
    // The first pod of a group that selects itself may go anywhere the
    // topology key exists.
    let none_anywhere = affinity.iter().all(|t| {
        !snap
            .nodes
            .iter()
            .any(|m| m.pods.iter().any(|q| selects(t, pod.namespace(), q, snap)))
    });
    let self_match = affinity
        .iter()
        .all(|t| selects(t, pod.namespace(), pod, snap) && node.label(&t.topology_key).is_some());
    if none_anywhere && self_match {
        return Ok(());
    }
    Err(Unfit::unresolvable(
        "node(s) didn't match pod affinity rules",
    ))
}

/// Preferred terms: +weight per matching pod in the node's domain for
/// affinity, -weight for anti-affinity (raw; normalized by the caller).
pub fn score(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
    let mut total = 0i64;
    for (anti, sign) in [(false, 1i64), (true, -1i64)] {
        for w in preferred_terms(pod, anti) {
            let t = &w.pod_affinity_term;
            let count = snap
                .nodes
                .iter()
                .filter(|m| same_domain(node, m, &t.topology_key))
                .flat_map(|m| m.pods.iter())
                .filter(|q| selects(t, pod.namespace(), q, snap))
                .count() as i64;
            total += sign * i64::from(w.weight) * count;
        }
    }
    total
}

pub fn has_preferred(pod: &PodInfo) -> bool {
    !preferred_terms(pod, false).is_empty() || !preferred_terms(pod, true).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod_in, snapshot};
    use serde_json::json;

    fn anti(app: &str) -> serde_json::Value {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}]}})
    }

    #[test]
    fn anti_affinity_keeps_pods_apart() {
        let n1 =
            node(json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}));
        let n2 =
            node(json!({"metadata": {"name": "n2", "labels": {"kubernetes.io/hostname": "n2"}}}));
        let first = pod_in("a", json!({"app": "web"}), json!({"affinity": anti("web")}));
        let snap = snapshot(vec![n1, n2], vec![("n1", first)]);
        let second = pod_in("b", json!({"app": "web"}), json!({"affinity": anti("web")}));
        let e = filter(&second, &snap.nodes[0], &snap).expect_err("same host");
        assert_eq!(
            e.reasons,
            ["node(s) didn't satisfy existing pods anti-affinity rules"]
        );
        assert!(filter(&second, &snap.nodes[1], &snap).is_ok());
        // Without the existing pod's own rule, the incoming pod's rule decides.
        let plain = pod_in("c", json!({"app": "web"}), json!({}));
        let snap = snapshot(
            vec![node(
                json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}),
            )],
            vec![("n1", plain)],
        );
        let e = filter(&second, &snap.nodes[0], &snap).expect_err("own rule");
        assert_eq!(e.reasons, ["node(s) didn't match pod anti-affinity rules"]);
    }

    #[test]
    fn affinity_needs_a_matching_pod_except_for_the_first() {
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}});
        let n1 = node(json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}}));
        let n2 = node(json!({"metadata": {"name": "n2", "labels": {"zone": "b"}}}));
        let db = pod_in("db", json!({"app": "db"}), json!({}));
        let snap = snapshot(vec![n1, n2], vec![("n2", db)]);
        let web = pod_in("web", json!({"app": "web"}), json!({"affinity": aff}));
        assert!(filter(&web, &snap.nodes[0], &snap).is_err());
        assert!(filter(&web, &snap.nodes[1], &snap).is_ok());
        let first = pod_in("db2", json!({"app": "db"}), json!({"affinity": aff}));
        let empty = snapshot(
            vec![node(
                json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}}),
            )],
            vec![],
        );
        assert!(filter(&first, &empty.nodes[0], &empty).is_ok());
    }
}
