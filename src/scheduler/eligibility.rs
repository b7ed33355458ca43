//! The scheduler's node checks for callers outside it: the DaemonSet
//! controller decides which nodes run a daemon pod with the same plugins
//! (upstream's daemon `predicates`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters;
use super::snapshot::{NodeInfo, PodInfo};

/// Whether `pod` may be on `node` by its nodeSelector and required node
/// affinity, and tolerates the node's taints of the given `effects`.
pub fn fits(pod: Arc<Pod>, node: Arc<Node>, effects: &[&str]) -> bool {
    let (pod, node) = (PodInfo::new(pod), NodeInfo::new(node));
    let tolerations = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    filters::matches_node_selector(&pod, &node)
        && filters::taints(&node)
            .iter()
            .filter(|taint| effects.contains(&taint.effect.as_str()))
            .all(|taint| tolerations.iter().any(|t| filters::tolerates(t, taint)))
}
