//! A node's certificates: what the server issues when a node joins, and
//! the check a restarted agent makes before reusing the ones it kept.

use std::net::IpAddr;

use super::certs::{first_cert_der, leaf_problem, parse_key, LeafSpec};
use super::sans::SanConfig;

/// A kubelet's serving certificate: its node name, localhost and its
/// InternalIP, so the API server can dial it by address.
pub(crate) fn kubelet_serving_spec(node_name: &str, node_ip: IpAddr) -> LeafSpec {
    let mut sans = SanConfig::default();
    sans.add(node_name);
    sans.add("localhost");
    sans.add_ip(node_ip);
    LeafSpec::Serving(sans)
}

/// A kubelet's client certificate: `system:node:<name>` in `system:nodes`.
pub(crate) fn node_client_spec(node_name: &str) -> LeafSpec {
    LeafSpec::Client {
        name: format!("system:node:{node_name}"),
        group: Some("system:nodes".into()),
    }
}

/// A certificate chain (leaf first) with its key and the CA it must chain to.
pub struct KeptCert<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: &'a str,
}

/// Why a node's kept client and serving certificates cannot be used any
/// more (unparseable, not from these CAs, for another name or address,
/// within 90 days of expiry), or None when both are still good.
pub fn node_cert_problem(
    node_name: &str,
    node_ip: IpAddr,
    client: &KeptCert<'_>,
    serving: &KeptCert<'_>,
) -> Option<String> {
    check(
        "the client certificate",
        client,
        &node_client_spec(node_name),
    )
    .or_else(|| {
        check(
            "the serving certificate",
            serving,
            &kubelet_serving_spec(node_name, node_ip),
        )
    })
}

fn check(what: &str, kept: &KeptCert<'_>, spec: &LeafSpec) -> Option<String> {
    let parsed = first_cert_der(kept.chain_pem, what).and_then(|der| {
        let key = parse_key(kept.key_pem, what)?;
        let ca = first_cert_der(kept.ca_pem, "the CA")?;
        Ok((der, key, ca))
    });
    match parsed {
        Ok((der, key, ca)) => leaf_problem(&der, &key, &ca, spec).map(|p| format!("{what}: {p}")),
        Err(e) => Some(format!("{e:#}")),
    }
}
