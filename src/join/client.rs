//! The agent's side of joining: pin the server CA by the token's hash,
//! then trade the secret for a node identity.

use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::{JoinRequest, NodeIdentity, CACERTS_PATH, NODE_IDENTITY_PATH};
use crate::identity::ParsedToken;

/// The server CA bundle, checked against the token's CA hash. Fetched
/// without verifying the server (there is nothing to verify it with yet);
/// the hash comparison is what makes it trustworthy. A bare-secret token
/// carries no hash, and the CA is then taken on trust, as k3s does.
pub async fn fetch_ca(server: &str, token: &ParsedToken) -> anyhow::Result<String> {
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}{CACERTS_PATH}", server.trim_end_matches('/'));
    let resp = insecure
        .get(&url)
        .send()
        .await
        .with_context(|| format!("fetching the server CA from {url}"))?;
    if !resp.status().is_success() {
        bail!("fetching the server CA from {url}: {}", resp.status());
    }
    let pem = resp.text().await?;
    let got = hex::encode(Sha256::digest(pem.as_bytes()));
    match &token.ca_hash {
        Some(want) if !want.eq_ignore_ascii_case(&got) => bail!(
            "the server at {server} has CA hash {got}, but the token pins {want}: \
             refusing to trust it"
        ),
        Some(_) => {}
        None => tracing::warn!(
            ca_sha256 = %got,
            "the join token has no CA hash; trusting the server's CA as given"
        ),
    }
    Ok(pem)
}

/// The node's certificates and podCIDR from the server.
pub async fn node_identity(
    server: &str,
    ca_pem: &str,
    token: &ParsedToken,
    req: &JoinRequest,
) -> anyhow::Result<NodeIdentity> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}{NODE_IDENTITY_PATH}", server.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .basic_auth("node", Some(&token.secret))
        .json(req)
        .send()
        .await
        .with_context(|| format!("joining through {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!(
            "the server refused to join node {:?}: {status}: {}",
            req.node_name,
            text.trim()
        );
    }
    resp.json().await.context("decoding the node identity")
}
