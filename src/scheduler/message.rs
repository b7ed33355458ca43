//! The FailedScheduling message, worded as upstream's FitError.

use std::collections::BTreeMap;

use super::filters::Unfit;

/// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated
/// taint {k: v}." followed by what preemption found, if anything.
pub fn fit_error(total_nodes: usize, unfit: &[Unfit], post_filter: Option<&str>) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut msg = format!(
        "0/{total_nodes} nodes are available: {}.",
        histogram(unfit.iter().flat_map(|u| u.reasons.iter().cloned()))
    );
    if let Some(p) = post_filter {
        msg.push(' ');
        msg.push_str(p);
    }
    msg
}

/// "1 a, 2 b": counts per reason, sorted as strings like upstream.
pub fn histogram(reasons: impl Iterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// What preemption says when it found no node.
pub fn preemption_failed(total_nodes: usize, per_node: impl Iterator<Item = String>) -> String {
    format!(
        "preemption: 0/{total_nodes} nodes are available: {}.",
        histogram(per_node)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_shape() {
        let unfit = vec![
            Unfit::resolvable("Insufficient cpu"),
            Unfit::unresolvable("node(s) had untolerated taint {k: v}"),
            Unfit::unresolvable("node(s) had untolerated taint {k: v}"),
        ];
        let post = preemption_failed(
            3,
            vec![
                "No preemption victims found for incoming pod".to_string(),
                "Preemption is not helpful for scheduling".to_string(),
                "Preemption is not helpful for scheduling".to_string(),
            ]
            .into_iter(),
        );
        assert_eq!(
            fit_error(3, &unfit, Some(&post)),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            fit_error(0, &[], None),
            "no nodes available to schedule pods"
        );
    }
}
