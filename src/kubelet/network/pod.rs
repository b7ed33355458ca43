//! The pod side, run inside the pod's network namespace.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::link;
use super::veth::POD_IFNAME;

/// Whether the pod already has its interface.
pub async fn has_interface(handle: &Handle) -> Result<bool> {
    Ok(link::index_of(handle, POD_IFNAME).await?.is_some())
}

/// Loopback up; eth0 with `ip/prefix`, up; the default route via `gateway`.
/// Every step replaces, so running it again changes nothing.
pub async fn configure(handle: &Handle, ip: Ipv4Addr, prefix: u8, gateway: Ipv4Addr) -> Result<()> {
    let lo = link::index_of(handle, "lo")
        .await?
        .context("the pod has no loopback interface")?;
    link::set_up(handle, lo).await?;
    let eth0 = link::index_of(handle, POD_IFNAME)
        .await?
        .with_context(|| format!("the pod has no {POD_IFNAME}"))?;
    handle
        .address()
        .add(eth0, IpAddr::V4(ip), prefix)
        .replace()
        .execute()
        .await
        .with_context(|| format!("adding {ip}/{prefix} to {POD_IFNAME}"))?;
    link::set_up(handle, eth0).await?;
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(eth0)
        .build();
    handle
        .route()
        .add(default)
        .replace()
        .execute()
        .await
        .with_context(|| format!("adding the default route via {gateway}"))
}
