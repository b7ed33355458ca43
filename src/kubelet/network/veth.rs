//! The veth pair joining a pod's namespace to the bridge.

use std::os::fd::RawFd;

use anyhow::{Context, Result};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use sha2::{Digest, Sha256};

use super::link;

/// The interface name inside the pod.
pub const POD_IFNAME: &str = "eth0";

/// The host-side name: stable per pod, and within IFNAMSIZ.
pub fn host_name(pod_id: &str) -> String {
    let digest = Sha256::digest(pod_id.as_bytes());
    format!("veth{}", hex::encode(&digest[..4]))
}

/// Creates the pair with its pod end already named eth0 inside the namespace
/// `pod_ns` (so it never clashes with a node interface of that name), and
/// plugs the host end into the bridge. A host end left from an earlier
/// namespace of the same pod is removed first.
pub async fn create(handle: &Handle, host: &str, pod_ns: RawFd, bridge: u32) -> Result<()> {
    delete(handle, host).await?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(POD_IFNAME)
        .setns_by_fd(pod_ns)
        .build();
    let pair = LinkVeth::new(host, POD_IFNAME)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(bridge)
        .up()
        .build();
    handle
        .link()
        .add(pair)
        .execute()
        .await
        .with_context(|| format!("creating veth {host}"))
}

/// Plugs an existing host end into the bridge and sets it up.
pub async fn attach(handle: &Handle, host: &str, bridge: u32) -> Result<()> {
    let index = link::index_of(handle, host)
        .await?
        .with_context(|| format!("veth {host} is missing"))?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .with_context(|| format!("attaching {host} to the bridge"))
}

/// Deletes the pair by its host end, if it exists (the kernel removes both
/// ends, and already did if the pod's namespace is gone).
pub async fn delete(handle: &Handle, host: &str) -> Result<()> {
    if let Some(index) = link::index_of(handle, host).await? {
        handle
            .link()
            .del(index)
            .execute()
            .await
            .with_context(|| format!("deleting veth {host}"))?;
    }
    Ok(())
}
