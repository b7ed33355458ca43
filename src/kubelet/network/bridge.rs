//! The node side: the pod bridge and IP forwarding.

use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use rtnetlink::{Handle, LinkBridge};

use super::link;

/// Creates the bridge `name` if missing, gives it `address` and sets it up.
/// Returns its index.
pub async fn ensure(handle: &Handle, name: &str, address: Ipv4Net) -> Result<u32> {
    let index = match link::index_of(handle, name).await? {
        Some(index) => index,
        None => {
            handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .with_context(|| format!("creating bridge {name}"))?;
            link::index_of(handle, name)
                .await?
                .with_context(|| format!("bridge {name} vanished after creation"))?
        }
    };
    handle
        .address()
        .add(index, IpAddr::V4(address.addr()), address.prefix_len())
        .replace()
        .execute()
        .await
        .with_context(|| format!("adding {address} to {name}"))?;
    link::set_up(handle, index).await?;
    Ok(index)
}

/// Turns on IPv4 forwarding in the calling thread's network namespace.
pub fn enable_forwarding() -> Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").context("enabling IPv4 forwarding")
}
