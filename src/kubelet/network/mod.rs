//! Pod networking on one node: a bridge holding the first address of the
//! node's podCIDR, a veth pair per pod into its sandbox's network namespace,
//! host-local IPAM on disk, and masquerade for traffic leaving the cluster.
//!
//! Links, addresses and routes are programmed over rtnetlink, each piece on a
//! thread inside the namespace it changes (see `netns`). The node side is the
//! namespace the `PodNetwork` was created in, so it is the host's for the
//! kubelet and a test's own namespace in tests. hostNetwork pods do not come
//! here: they keep the node's namespace.

mod bridge;
mod ipam;
mod link;
mod netns;
mod nft;
mod pod;
mod veth;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;

use ipam::Ipam;

pub const BRIDGE: &str = "cni0";

pub struct PodNetwork {
    bridge: String,
    pod_cidr: Ipv4Net,
    cluster_cidr: Ipv4Net,
    /// The namespace the node side lives in, held open from creation.
    node_ns: Arc<File>,
    ipam: Ipam,
}

impl PodNetwork {
    /// Pod addresses are allocated from `pod_cidr` and recorded under
    /// `state_dir`; the calling thread's network namespace is the node's.
    pub fn new(state_dir: &Path, pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> Result<PodNetwork> {
        if pod_cidr.prefix_len() > 30 {
            bail!("podCIDR {pod_cidr} is too small for a gateway and pods");
        }
        let node_ns = File::open("/proc/thread-self/ns/net")
            .context("opening the node's network namespace")?;
        let pod_cidr = pod_cidr.trunc();
        let gateway = gateway(pod_cidr);
        Ok(PodNetwork {
            bridge: BRIDGE.to_string(),
            pod_cidr,
            cluster_cidr: cluster_cidr.trunc(),
            node_ns: Arc::new(node_ns),
            ipam: Ipam::new(state_dir, pod_cidr, gateway),
        })
    }

    /// The bridge's address, every pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway(self.pod_cidr)
    }

    /// Idempotent: the bridge up with the gateway address, IPv4 forwarding
    /// on, and the nftables table `kone`.
    pub async fn ensure_node(&self) -> Result<()> {
        let bridge = self.bridge.clone();
        let address = Ipv4Net::new(self.gateway(), self.pod_cidr.prefix_len())?;
        let (pod_cidr, cluster_cidr) = (self.pod_cidr, self.cluster_cidr);
        netns::run_in(self.node_ns.clone(), move |handle| async move {
            bridge::ensure(&handle, &bridge, address).await?;
            bridge::enable_forwarding()?;
            nft::apply(&bridge, pod_cidr, cluster_cidr)
        })
        .await?;
        tracing::info!(bridge = %self.bridge, pod_cidr = %self.pod_cidr, "node network ready");
        Ok(())
    }

    /// Idempotent per pod: gives the pod at `netns` (an nsfs file) its
    /// address, veth pair, loopback and default route. Returns the address.
    /// After an error the caller is expected to call `teardown`.
    pub async fn setup(&self, pod_id: &str, netns: &Path) -> Result<Ipv4Addr> {
        let ip = self.ipam.allocate(pod_id)?;
        let pod_ns =
            Arc::new(File::open(netns).with_context(|| format!("opening {}", netns.display()))?);
        let plugged = netns::run_in(pod_ns.clone(), |handle| async move {
            pod::has_interface(&handle).await
        })
        .await?;

        let host = veth::host_name(pod_id);
        let bridge = self.bridge.clone();
        let target = pod_ns.clone();
        netns::run_in(self.node_ns.clone(), move |handle| async move {
            let bridge = link::index_of(&handle, &bridge)
                .await?
                .with_context(|| format!("bridge {bridge} is missing: ensure_node first"))?;
            if plugged {
                veth::attach(&handle, &host, bridge).await
            } else {
                veth::create(&handle, &host, target.as_raw_fd(), bridge).await
            }
        })
        .await?;

        let prefix = self.pod_cidr.prefix_len();
        let gateway = self.gateway();
        netns::run_in(pod_ns, move |handle| async move {
            pod::configure(&handle, ip, prefix, gateway).await
        })
        .await?;
        tracing::debug!(pod_id, %ip, "pod network set up");
        Ok(ip)
    }

    /// Idempotent: deletes the pod's veth pair if it still exists and
    /// releases its address.
    pub async fn teardown(&self, pod_id: &str) -> Result<()> {
        let host = veth::host_name(pod_id);
        netns::run_in(self.node_ns.clone(), move |handle| async move {
            veth::delete(&handle, &host).await
        })
        .await?;
        if let Some(ip) = self.ipam.release(pod_id)? {
            tracing::debug!(pod_id, %ip, "pod network torn down");
        }
        Ok(())
    }

    /// Addresses currently allocated, as (pod id, address): what garbage
    /// collection compares with the pods that still exist.
    pub fn allocations(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        self.ipam.allocations()
    }
}

/// The first address of the pod CIDR.
fn gateway(pod_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pod_cidr.network()) + 1)
}
