//! Node IPAM (upstream's node-ipam-controller with the range allocator):
//! every Node without a podCIDR gets the lowest free /24 of the cluster
//! CIDR. The allocations live only in the Nodes themselves: the first list
//! takes back what they hold, so a restart agrees with the store, and a
//! deleted Node's range is free again. The server's own kubelet registers
//! without a podCIDR and waits for this one, so there is a single owner.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use serde_json::json;

use super::events::{EventType, Recorder};
use super::informers::Informers;

/// Upstream's --node-cidr-mask-size for IPv4.
const NODE_MASK: u8 = 24;

/// The ranges of a cluster CIDR, by index, and which are taken.
struct Ranges {
    cluster: Ipv4Net,
    /// Node name → index of its range.
    by_node: HashMap<String, u32>,
    used: BTreeSet<u32>,
}

impl Ranges {
    fn new(cluster: Ipv4Net) -> Self {
        Ranges {
            cluster: cluster.trunc(),
            by_node: HashMap::new(),
            used: BTreeSet::new(),
        }
    }

    fn count(&self) -> u32 {
        match NODE_MASK.checked_sub(self.cluster.prefix_len()) {
            Some(bits) => 1u32.checked_shl(u32::from(bits)).unwrap_or(0),
            None => 0,
        }
    }

    fn range(&self, i: u32) -> Option<Ipv4Net> {
        let step = 1u32.checked_shl(32 - u32::from(NODE_MASK))?;
        let base = u32::from(self.cluster.network()).checked_add(i.checked_mul(step)?)?;
        Ipv4Net::new(base.into(), NODE_MASK).ok()
    }

    /// The index of `cidr` if it is one of our ranges.
    fn index_of(&self, cidr: &str) -> Option<u32> {
        let net: Ipv4Net = cidr.parse().ok()?;
        if net.prefix_len() != NODE_MASK || !self.cluster.contains(&net) {
            return None;
        }
        let step = 1u32 << (32 - u32::from(NODE_MASK));
        Some((u32::from(net.network()) - u32::from(self.cluster.network())) / step)
    }

    /// Records what a node already holds (a range outside ours is its own).
    fn occupy(&mut self, node: &str, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used.insert(i);
            self.by_node.insert(node.to_string(), i);
        }
    }

    fn allocate(&mut self, node: &str) -> Option<Ipv4Net> {
        let i = (0..self.count()).find(|i| !self.used.contains(i))?;
        self.used.insert(i);
        self.by_node.insert(node.to_string(), i);
        self.range(i)
    }

    fn release(&mut self, node: &str) {
        if let Some(i) = self.by_node.remove(node) {
            self.used.remove(&i);
        }
    }
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

pub async fn run(informers: Informers, cluster: Ipv4Net) {
    let client = informers.client();
    let recorder = Recorder::new(client.clone(), "node-ipam-controller");
    let informer = informers.get::<Node>();
    informer.ready().await;
    let store = informer.store();
    let mut ranges = Ranges::new(cluster);
    for node in store.state() {
        if let Some(cidr) = pod_cidr(&node) {
            ranges.occupy(&node.name_any(), cidr);
        }
    }
    let api: Api<Node> = Api::all(client);
    let mut changes = informer.changes().boxed();
    while let Some(node) = changes.next().await {
        let name = node.name_any();
        let current = store
            .get(&ObjectRef::from_obj(&*node))
            .filter(|c| c.uid() == node.uid());
        let Some(current) = current else {
            ranges.release(&name);
            continue;
        };
        if let Some(cidr) = pod_cidr(&current) {
            ranges.occupy(&name, cidr);
            continue;
        }
        if ranges.by_node.contains_key(&name) {
            // Allocated; the informer has not shown the patch yet.
            continue;
        }
        assign(&api, &recorder, &mut ranges, current).await;
    }
}

async fn assign(api: &Api<Node>, recorder: &Recorder, ranges: &mut Ranges, node: Arc<Node>) {
    let name = node.name_any();
    let Some(cidr) = ranges.allocate(&name) else {
        recorder
            .record(
                &*node,
                EventType::Warning,
                "CIDRNotAvailable",
                &format!("Node {name} status is now: CIDRNotAvailable"),
            )
            .await;
        return;
    };
    let patch = json!({
        "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]},
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::info!(node = %name, %cidr, "allocated the node's podCIDR"),
        Err(error) => {
            tracing::info!(node = %name, %error, "could not set the node's podCIDR");
            ranges.release(&name);
            recorder
                .record(
                    &*node,
                    EventType::Warning,
                    "CIDRAssignmentFailed",
                    &format!("Node {name} status is now: CIDRAssignmentFailed"),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_range_and_release() {
        let mut r = Ranges::new("10.42.0.0/16".parse().expect("cidr"));
        assert_eq!(r.count(), 256);
        r.occupy("server", "10.42.0.0/24");
        r.occupy("elsewhere", "192.168.0.0/24");
        assert_eq!(
            r.allocate("a").map(|c| c.to_string()).as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(
            r.allocate("b").map(|c| c.to_string()).as_deref(),
            Some("10.42.2.0/24")
        );
        r.release("a");
        assert_eq!(
            r.allocate("c").map(|c| c.to_string()).as_deref(),
            Some("10.42.1.0/24")
        );
        let mut small = Ranges::new("10.0.0.0/24".parse().expect("cidr"));
        assert!(small.allocate("x").is_some());
        assert!(small.allocate("y").is_none());
        assert!(Ranges::new("10.0.0.0/25".parse().expect("cidr"))
            .allocate("z")
            .is_none());
    }
}
