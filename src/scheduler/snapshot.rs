//! The scheduler's view of the cluster for one batch: every node with the
//! pods bound (or assumed bound) to it and what they request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelector, Pod};

use super::interpod;
use super::resources::{self, Resources};

/// A pod with what the filters and scores keep asking about it.
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub requests: Resources,
    pub non_zero: Resources,
    pub priority: i32,
    /// The node affinity of the volumes its bound claims hold (local PVs).
    pub volume_affinity: Vec<NodeSelector>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let (requests, non_zero, priority) = match &pod.spec {
            Some(s) => (
                resources::pod_requests(s),
                resources::pod_requests_non_zero(s),
                s.priority.unwrap_or(0),
            ),
            None => Default::default(),
        };
        PodInfo {
            pod,
            requests,
            non_zero,
            priority,
            volume_affinity: Vec::new(),
        }
    }

    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.pod.metadata.labels.as_ref()
    }

    /// hostPorts as (protocol, hostIP, port); 0.0.0.0 when unset.
    pub fn host_ports(&self) -> Vec<(String, String, i32)> {
        let Some(spec) = &self.pod.spec else {
            return Vec::new();
        };
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|h| *h > 0)?;
                let ip = p
                    .host_ip
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, port))
            })
            .collect()
    }
}

/// One node and what is placed on it.
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
}

impl NodeInfo {
    pub(super) fn new(node: Arc<Node>) -> Self {
        let allocatable =
            resources::from_map(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        NodeInfo {
            node,
            allocatable,
            requested: Resources::new(),
            non_zero_requested: Resources::new(),
            pods: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().and_then(|l| l.get(key)).map(String::as_str)
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        for (k, v) in &pod.requests {
            *self.requested.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &pod.non_zero {
            *self.non_zero_requested.entry(k.clone()).or_default() += v;
        }
        self.pods.push(pod);
    }

    pub fn remove_pod(&mut self, uid: &str) {
        let Some(i) = self.pods.iter().position(|p| p.uid() == uid) else {
            return;
        };
        let pod = self.pods.swap_remove(i);
        for (k, v) in &pod.requests {
            *self.requested.entry(k.clone()).or_default() -= v;
        }
        for (k, v) in &pod.non_zero {
            *self.non_zero_requested.entry(k.clone()).or_default() -= v;
        }
    }

    /// Image names (with and without tags as the node reports them).
    pub fn image_sizes(&self) -> HashMap<&str, i64> {
        self.node
            .status
            .iter()
            .flat_map(|s| s.images.iter().flatten())
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.as_str(), size))
            })
            .collect()
    }
}

/// Every schedulable node and the pods on them, plus namespace labels for
/// affinity terms that select namespaces.
pub struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Bound pods with required anti-affinity terms, and their nodes.
    pub anti_affinity_pods: Vec<(String, Arc<PodInfo>)>,
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
}

/// A pod holds node resources until it is gone or has finished.
fn holds_resources(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Snapshot {
    /// `assumed` are pods this scheduler bound whose binding the cache may
    /// not show yet (uid → node).
    pub fn build(
        nodes: Vec<Arc<Node>>,
        pods: Vec<Arc<Pod>>,
        assumed: &HashMap<String, (String, Arc<Pod>)>,
        namespace_labels: HashMap<String, BTreeMap<String, String>>,
    ) -> Snapshot {
        let mut snap = Snapshot {
            nodes: nodes.into_iter().map(NodeInfo::new).collect(),
            index: HashMap::new(),
            anti_affinity_pods: Vec::new(),
            namespace_labels,
        };
        snap.nodes.sort_by(|a, b| a.name().cmp(b.name()));
        snap.index = snap
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        let mut seen = HashSet::new();
        for pod in pods {
            let Some(node) = node_of(&pod).map(str::to_string) else {
                continue;
            };
            if !holds_resources(&pod) {
                continue;
            }
            let info = Arc::new(PodInfo::new(pod));
            seen.insert(info.uid().to_string());
            snap.place(&node, info);
        }
        for (uid, (node, pod)) in assumed {
            if seen.contains(uid) {
                continue;
            }
            snap.place(node, Arc::new(PodInfo::new(pod.clone())));
        }
        snap
    }

    /// Counts a pod on a node (bound, assumed, or a preemption's trial).
    pub fn place(&mut self, node: &str, pod: Arc<PodInfo>) {
        if interpod::has_required_anti_affinity(&pod) {
            self.anti_affinity_pods
                .push((node.to_string(), pod.clone()));
        }
        if let Some(n) = self.node_mut(node) {
            n.add_pod(pod);
        }
    }

    /// Takes a pod off its node again (a preemption's victim).
    pub fn unplace(&mut self, node: &str, uid: &str) {
        self.anti_affinity_pods.retain(|(_, p)| p.uid() != uid);
        if let Some(n) = self.node_mut(node) {
            n.remove_pod(uid);
        }
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.index.get(name)?;
        self.nodes.get_mut(i)
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(*self.index.get(name)?)
    }
}
