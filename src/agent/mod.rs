//! `kone agent`: the node side alone, joined to a running server with its
//! join token (see src/join/). The node's certificates are kept on disk
//! (kept.rs) and reused while valid, so a restarted agent does not need
//! the server to bring its node back; it joins again only when they are
//! missing, near expiry, for another name or address, or the server's CA
//! changed.

mod kept;
pub(crate) mod password;

use std::path::Path;

use anyhow::Context;

use crate::config::AgentArgs;
use crate::identity::{self, fsutil::write_atomic, ParsedToken};
use crate::join::{self, JoinRequest};
use crate::kubelet::{self, server::KubeletTls, KubeletConfig};
use crate::{netinfo, reconnect};
use kept::Kept;

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let token = args.token()?;
    let registries = args.registry.load()?;
    let parsed = identity::parse_token_parts(&token);
    let agent_dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("creating {}", agent_dir.display()))?;
    let req = JoinRequest {
        node_name: args.node.name(),
        node_ip: args.node.node_ip.unwrap_or_else(netinfo::primary_ip),
        node_password: password::ensure(&agent_dir)?,
    };
    let kept = tokio::select! {
        r = node_identity(&args.server, &parsed, &req, &agent_dir) => r?,
        _ = crate::server::shutdown_signal() => return Ok(()),
    };
    let id = kept.id;
    // Like k3s's agent/kubelet.kubeconfig: what the kubelet talks to the
    // API server with, kept for the operator to inspect.
    let kubeconfig = identity::kubeconfig_yaml_for(
        &args.server,
        &kept.server_ca,
        &id.client_cert,
        &id.client_key,
    );
    write_atomic(
        &agent_dir.join("kubelet.kubeconfig"),
        kubeconfig.as_bytes(),
        0o600,
    )?;
    let client = client_from(&kubeconfig).await?;
    let cluster_cidr = id
        .cluster_cidr
        .parse::<ipnet::Ipv4Net>()
        .with_context(|| format!("the server sent a bad cluster CIDR {:?}", id.cluster_cidr))?;
    let cfg = KubeletConfig::new(&args.node, &args.data_dir, req.node_ip, cluster_cidr, false)?;
    let tls = KubeletTls {
        serving_chain_pem: id.serving_cert,
        serving_key_pem: id.serving_key,
        client_ca_pem: id.client_ca,
    };
    tokio::select! {
        r = kubelet::run(cfg, client, registries, tls) => r,
        _ = crate::server::shutdown_signal() => Ok(()),
    }
}

/// The kept identity if it still serves, else a new one from the server
/// (waiting for the server as long as it is unreachable).
async fn node_identity(
    server: &str,
    token: &ParsedToken,
    req: &JoinRequest,
    agent_dir: &Path,
) -> anyhow::Result<Kept> {
    let reason = match Kept::load(agent_dir) {
        Ok(Some(kept)) => match kept.problem(token, &req.node_name, req.node_ip) {
            None => match join::client::fetch_ca(server, token).await {
                Ok(ca) if ca == kept.server_ca => {
                    tracing::info!(%server, node = %req.node_name, "starting from the kept node identity");
                    return Ok(kept);
                }
                Ok(_) => "the server's CA changed".to_string(),
                Err(e) if reconnect::is_unreachable(&e) => {
                    tracing::warn!(%server, node = %req.node_name, error = %format!("{e:#}"),
                        "the server is unreachable; starting from the kept node identity");
                    return Ok(kept);
                }
                Err(e) => return Err(e),
            },
            Some(problem) => problem,
        },
        Ok(None) => "no kept node identity".to_string(),
        Err(e) => format!("{e:#}"),
    };
    tracing::info!(%server, node = %req.node_name, %reason, "joining the cluster");
    let kept = reconnect::until_reachable("joining", || async move {
        let server_ca = join::client::fetch_ca(server, token).await?;
        let id = join::client::node_identity(server, &server_ca, token, req).await?;
        Ok(Kept { server_ca, id })
    })
    .await?;
    kept.save(agent_dir)?;
    tracing::info!(%server, node = %req.node_name, "kone agent joined");
    Ok(kept)
}

async fn client_from(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("the agent's kubeconfig")?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Reads a token file the way k3s's --token-file does: trimmed contents.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("reading token file {}", path.display()))?;
    Ok(t.trim().to_string())
}
