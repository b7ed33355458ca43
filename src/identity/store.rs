//! The server's TLS identity on disk, laid out as k3s lays out server/tls.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ca::Ca;
use super::certs::{first_cert_der, issue_leaf, leaf_problem, parse_key, LeafSpec};
use super::fsutil::{ensure_dir, read_optional, write_atomic};
use super::node::{kubelet_serving_spec, node_client_spec};
use super::sans::SanConfig;

/// The user in the admin kubeconfig: kube-apiserver's superuser group.
pub const ADMIN_USER: &str = "system:admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// Certificates and keys the rest of kone needs. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    /// Server CA file contents, byte for byte: agents fetch it and compare
    /// its hash with the join token, so it must never be re-encoded.
    pub server_ca_pem: String,
    pub server_ca_der: Vec<u8>,
    /// Client CA: verifies client certificates presented to the apiserver.
    pub client_ca_pem: String,
    pub client_ca_der: Vec<u8>,
    /// Serving certificate followed by the server CA.
    pub serving_chain_pem: String,
    pub serving_key_pem: String,
    /// `system:admin` / `system:masters`, followed by the client CA.
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    server_ca_key_pem: String,
    client_ca_key_pem: String,
}

impl fmt::Debug for Identity {
    // Never print private keys into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("ca_sha256", &self.ca_sha256_hex())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// SHA-256 of the server CA file, the `<ca-sha256>` of a
    /// `K10<ca-sha256>::server:<secret>` token. Like k3s it hashes the PEM
    /// bytes that the server hands out as its CA bundle, not the DER.
    pub fn ca_sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.server_ca_pem.as_bytes()))
    }

    /// A client certificate for `name` in `group`, signed by the client CA,
    /// for component identities (e.g. `system:node:<n>` in `system:nodes`).
    /// Returns (certificate chain PEM, key PEM).
    pub fn issue_client_cert(
        &self,
        name: &str,
        group: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let spec = LeafSpec::Client {
            name: name.to_string(),
            group: group.map(str::to_string),
        };
        self.issue_from_client_ca(&spec)
    }

    /// A serving certificate signed by the server CA (e.g. for a kubelet).
    /// Returns (certificate chain PEM, key PEM).
    pub fn issue_serving_cert(&self, sans: &SanConfig) -> anyhow::Result<(String, String)> {
        self.issue_from_server_ca(&LeafSpec::Serving(sans.clone()))
    }

    /// A kubelet's serving certificate (see [`super::node`]).
    pub fn issue_kubelet_serving_cert(
        &self,
        node_name: &str,
        node_ip: std::net::IpAddr,
    ) -> anyhow::Result<(String, String)> {
        self.issue_from_server_ca(&kubelet_serving_spec(node_name, node_ip))
    }

    /// A kubelet's client certificate (see [`super::node`]).
    pub fn issue_node_client_cert(&self, node_name: &str) -> anyhow::Result<(String, String)> {
        self.issue_from_client_ca(&node_client_spec(node_name))
    }

    fn issue_from_client_ca(&self, spec: &LeafSpec) -> anyhow::Result<(String, String)> {
        issue_from(
            &self.client_ca_pem,
            &self.client_ca_key_pem,
            "client CA",
            spec,
        )
    }

    fn issue_from_server_ca(&self, spec: &LeafSpec) -> anyhow::Result<(String, String)> {
        issue_from(
            &self.server_ca_pem,
            &self.server_ca_key_pem,
            "server CA",
            spec,
        )
    }
}

/// A leaf from the CA `cert_pem`/`key_pem`, followed by that CA.
fn issue_from(
    cert_pem: &str,
    key_pem: &str,
    what: &str,
    spec: &LeafSpec,
) -> anyhow::Result<(String, String)> {
    let ca = Ca::from_pems(cert_pem.to_string(), key_pem.to_string(), what)?;
    let (cert, key) = issue_leaf(spec, &ca.issuer()?)?;
    Ok((cert + &ca.cert_pem, key))
}

/// Load the identity from `tls_dir`, creating whatever is missing.
///
/// CAs are created once and kept. Leaf certificates are reissued from the
/// existing CA when absent, broken, near expiry, or no longer matching what
/// is asked for (a new `--tls-san` reissues only the serving certificate).
pub fn ensure_identity(tls_dir: &Path, sans: &SanConfig) -> anyhow::Result<Identity> {
    ensure_dir(tls_dir, 0o700)?;
    let server_ca = Ca::load_or_create(tls_dir, "server-ca", "kone-server-ca")?;
    let client_ca = Ca::load_or_create(tls_dir, "client-ca", "kone-client-ca")?;
    let (serving_chain_pem, serving_key_pem) = ensure_leaf(
        tls_dir,
        "serving-kube-apiserver",
        &server_ca,
        &LeafSpec::Serving(sans.clone()),
    )?;
    let (admin_cert_pem, admin_key_pem) = ensure_leaf(
        tls_dir,
        "client-admin",
        &client_ca,
        &LeafSpec::Client {
            name: ADMIN_USER.into(),
            group: Some(ADMIN_GROUP.into()),
        },
    )?;
    Ok(Identity {
        server_ca_der: server_ca.cert_der,
        server_ca_pem: server_ca.cert_pem,
        server_ca_key_pem: server_ca.key_pem,
        client_ca_der: client_ca.cert_der,
        client_ca_pem: client_ca.cert_pem,
        client_ca_key_pem: client_ca.key_pem,
        serving_chain_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
    })
}

/// Reuse `<base>.crt/.key` if still good, else issue and store a new pair.
/// The stored certificate file carries the CA after the leaf, as k3s's do.
fn ensure_leaf(
    dir: &Path,
    base: &str,
    ca: &Ca,
    spec: &LeafSpec,
) -> anyhow::Result<(String, String)> {
    let crt_path = dir.join(format!("{base}.crt"));
    let key_path = dir.join(format!("{base}.key"));
    let problem = match (read_optional(&crt_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            let what = crt_path.display().to_string();
            match (first_cert_der(&cert_pem, &what), parse_key(&key_pem, &what)) {
                (Ok(der), Ok(key)) => match leaf_problem(&der, &key, &ca.cert_der, spec) {
                    None => return Ok((cert_pem, key_pem)),
                    Some(p) => p,
                },
                (Err(e), _) | (_, Err(e)) => format!("{e:#}"),
            }
        }
        _ => "missing".to_string(),
    };
    let (cert, key) = issue_leaf(spec, &ca.issuer()?)?;
    let chain = cert + &ca.cert_pem;
    write_atomic(&key_path, key.as_bytes(), 0o600)?;
    write_atomic(&crt_path, chain.as_bytes(), 0o644)?;
    tracing::info!(path = %crt_path.display(), reason = %problem, "issued certificate");
    Ok((chain, key))
}
