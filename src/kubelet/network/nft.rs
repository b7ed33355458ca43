//! The node's nftables table `kone`: masquerade for pod traffic leaving the
//! cluster CIDR, and forwarding to and from the bridge.
//!
//! The ruleset is fed to `nft -f -`. The Rust crates that speak nf_tables
//! netlink are GPL (rustables) or bind GPL C libraries (nftnl over
//! libnftnl/libmnl), which would make the binary GPL; running the `nft`
//! program does not.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;

pub const TABLE: &str = "kone";

/// The whole table, replaced atomically: `add` then `delete` makes the delete
/// valid on a node without the table, and nft applies the file as one
/// transaction, so packets never see a half-written table.
pub fn ruleset(bridge: &str, pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> String {
    format!(
        "add table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname \"{bridge}\" accept
		oifname \"{bridge}\" accept
	}}
}}
"
    )
}

/// Loads `ruleset` into the calling thread's network namespace (the child
/// inherits it), so call it from a thread inside the node's namespace.
pub fn apply(ruleset: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset.as_bytes())
            .context("writing the ruleset to nft")?;
    }
    let output = child.wait_with_output().context("waiting for nft")?;
    if !output.status.success() {
        bail!(
            "nft rejected the ruleset: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
