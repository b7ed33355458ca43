//! Admin kubeconfig, shaped like k3s's k3s.yaml.

use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::fsutil::write_atomic;
use super::store::Identity;

/// The admin kubeconfig (`system:admin`) for `server_url`.
pub fn kubeconfig_yaml(server_url: &str, identity: &Identity) -> String {
    kubeconfig_yaml_for(
        server_url,
        &identity.server_ca_pem,
        &identity.admin_cert_pem,
        &identity.admin_key_pem,
    )
}

/// A kubeconfig with one cluster, user and context, all named "default",
/// authenticating with a client certificate. Also for component kubeconfigs.
pub fn kubeconfig_yaml_for(
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> String {
    // A JSON string is a valid YAML double-quoted scalar, so this quotes the
    // URL safely whatever it contains; base64 needs no quoting.
    let server = serde_json::Value::String(server_url.to_string());
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = B64.encode(ca_pem),
        cert = B64.encode(client_cert_pem),
        key = B64.encode(client_key_pem),
    )
}

/// Write the admin kubeconfig to `path` with exactly `mode` (e.g. 0o600, or
/// 0o644 for `--write-kubeconfig-mode 644`), creating parent directories.
pub fn write_kubeconfig(
    path: &Path,
    mode: u32,
    server_url: &str,
    identity: &Identity,
) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_atomic(path, kubeconfig_yaml(server_url, identity).as_bytes(), mode)
        .with_context(|| format!("writing kubeconfig {}", path.display()))
}
