//! Score plugins and their upstream weights: which feasible node is best.
//! Each plugin scores 0..=100 per node; the weighted sum decides, ties are
//! broken at random (as upstream's reservoir sampling).

use rand::Rng;

use super::filters::{self, taints, tolerates};
use super::interpod;
use super::snapshot::{NodeInfo, PodInfo, Snapshot};
use super::spread;

const MAX: i64 = 100;
/// Upstream ImageLocality's thresholds (23 MB; 1000 MB per container).
const IMAGE_MIN: i128 = 23 * 1024 * 1024;
const IMAGE_MAX: i128 = 1000 * 1024 * 1024;

fn fraction(node: &NodeInfo, pod: &PodInfo, res: &str) -> Option<f64> {
    let alloc = *node.allocatable.get(res)?;
    if alloc <= 0 {
        return None;
    }
    let used = node.non_zero_requested.get(res).copied().unwrap_or(0)
        + pod.non_zero.get(res).copied().unwrap_or(0);
    Some((used as f64 / alloc as f64).min(1.0))
}

/// NodeResourcesFit with LeastAllocated (cpu and memory, equal weights).
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let scores: Vec<f64> = ["cpu", "memory"]
        .iter()
        .filter_map(|r| fraction(node, pod, r))
        .map(|f| (1.0 - f) * MAX as f64)
        .collect();
    if scores.is_empty() {
        return 0;
    }
    (scores.iter().sum::<f64>() / scores.len() as f64) as i64
}

/// NodeResourcesBalancedAllocation: cpu and memory used in equal shares.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    match (fraction(node, pod, "cpu"), fraction(node, pod, "memory")) {
        (Some(c), Some(m)) => ((1.0 - (c - m).abs() / 2.0) * MAX as f64) as i64,
        _ => 0,
    }
}

/// Raw TaintToleration: PreferNoSchedule taints the pod does not tolerate.
fn intolerable_soft_taints(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tols: Vec<_> = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    taints(node)
        .iter()
        .filter(|taint| {
            taint.effect == "PreferNoSchedule" && !tols.iter().any(|t| tolerates(t, taint))
        })
        .count() as i64
}

/// Raw NodeAffinity: the weights of the preferred terms the node matches.
fn preferred_node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
        .iter()
        .filter(|p| filters::term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// `busybox` → `docker.io/library/busybox:latest`, as nodes list images.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_domain, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if let Some(d) = digest {
        full = format!("{full}@{d}");
    } else if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// ImageLocality: sizes of the pod's images already on the node, damped by
/// how few nodes have them.
fn image_locality(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot) -> i64 {
    let Some(spec) = &pod.pod.spec else {
        return 0;
    };
    let here = node.image_sizes();
    let mut sum: i128 = 0;
    for c in &spec.containers {
        let Some(image) = c.image.as_deref() else {
            continue;
        };
        let full = normalize_image(image);
        let Some(size) = here.get(full.as_str()).or_else(|| here.get(image)) else {
            continue;
        };
        let holders = snap
            .nodes
            .iter()
            .filter(|n| {
                let imgs = n.image_sizes();
                imgs.contains_key(full.as_str()) || imgs.contains_key(image)
            })
            .count() as i128;
        sum += i128::from(*size) * holders / snap.nodes.len().max(1) as i128;
    }
    let max = IMAGE_MAX * spec.containers.len().max(1) as i128;
    let clamped = sum.clamp(IMAGE_MIN, max);
    ((clamped - IMAGE_MIN) * i128::from(MAX) / (max - IMAGE_MIN).max(1)) as i64
}

/// Scale raw scores to 0..=100 over the candidates (upstream's
/// DefaultNormalizeScore); `reverse` when lower raw is better.
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.iter()
        .map(|&r| {
            if max == min {
                if reverse {
                    MAX
                } else {
                    0
                }
            } else {
                let s = (r - min) * MAX / (max - min);
                if reverse {
                    MAX - s
                } else {
                    s
                }
            }
        })
        .collect()
}

/// The best of `feasible` (indexes into the snapshot's nodes).
pub fn pick(pod: &PodInfo, feasible: &[usize], snap: &Snapshot) -> Option<usize> {
    if feasible.len() <= 1 {
        return feasible.first().copied();
    }
    let nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| &snap.nodes[i]).collect();
    let mut total: Vec<i64> = nodes
        .iter()
        .map(|n| {
            least_allocated(pod, n) + balanced_allocation(pod, n) + image_locality(pod, n, snap)
        })
        .collect();
    let mut add = |raw: Vec<i64>, reverse: bool, weight: i64| {
        for (t, s) in total.iter_mut().zip(normalize(&raw, reverse)) {
            *t += weight * s;
        }
    };
    add(
        nodes
            .iter()
            .map(|n| intolerable_soft_taints(pod, n))
            .collect(),
        true,
        3,
    );
    add(
        nodes
            .iter()
            .map(|n| preferred_node_affinity(pod, n))
            .collect(),
        false,
        2,
    );
    if interpod::has_preferred(pod) {
        add(
            nodes
                .iter()
                .map(|n| interpod::score(pod, n, snap))
                .collect(),
            false,
            2,
        );
    }
    if spread::has_soft(pod) {
        add(
            nodes.iter().map(|n| spread::score(pod, n, snap)).collect(),
            false,
            2,
        );
    }
    let best = total.iter().copied().max()?;
    let ties: Vec<usize> = feasible
        .iter()
        .zip(&total)
        .filter(|(_, t)| **t == best)
        .map(|(i, _)| *i)
        .collect();
    let chosen = rand::rng().random_range(0..ties.len());
    ties.get(chosen).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod, snapshot};
    use serde_json::json;
    use std::sync::Arc;

    fn alloc(name: &str) -> serde_json::Value {
        json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})
    }

    #[test]
    fn emptier_nodes_win() {
        let mut busy = node(alloc("busy"));
        busy.add_pod(Arc::new(pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "6Gi"}}}]}))));
        let snap = snapshot(vec![], vec![]);
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert!(least_allocated(&p, &node(alloc("idle"))) > least_allocated(&p, &busy));
        assert!(snap.nodes.is_empty());
    }

    #[test]
    fn soft_taints_and_preferences_steer() {
        let tainted = json!({"metadata": {"name": "a"}, "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        let snap = snapshot(vec![node(tainted), node(alloc("b"))], vec![]);
        let p = pod(json!({"containers": [{"name": "c"}]}));
        for _ in 0..10 {
            assert_eq!(pick(&p, &[0, 1], &snap), Some(1));
        }
    }

    #[test]
    fn image_names_normalize() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(normalize_image("reg.io:5000/app"), "reg.io:5000/app:latest");
    }
}
