//! `kone agent`: the node side alone, joined to a running server with its
//! join token (see src/join/).

use std::path::Path;

use anyhow::Context;

use crate::config::AgentArgs;
use crate::identity::{self, fsutil::write_atomic};
use crate::join::{self, JoinRequest};
use crate::kubelet::{self, server::KubeletTls, KubeletConfig};
use crate::netinfo;

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let token = args.token()?;
    let registries = args.registry.load()?;
    let parsed = identity::parse_token_parts(&token);
    let ca_pem = join::client::fetch_ca(&args.server, &parsed).await?;
    let req = JoinRequest {
        node_name: args.node.name(),
        node_ip: args.node.node_ip.unwrap_or_else(netinfo::primary_ip),
    };
    let id = join::client::node_identity(&args.server, &ca_pem, &parsed, &req).await?;
    // Like k3s's agent/kubelet.kubeconfig: what the kubelet talks to the
    // API server with, kept for the operator to inspect.
    let kubeconfig =
        identity::kubeconfig_yaml_for(&args.server, &ca_pem, &id.client_cert, &id.client_key);
    let agent_dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("creating {}", agent_dir.display()))?;
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
    tracing::info!(server = %args.server, node = %cfg.node_name, "kone agent joined");
    tokio::select! {
        r = kubelet::run(cfg, client, registries, tls) => r,
        _ = crate::server::shutdown_signal() => Ok(()),
    }
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
