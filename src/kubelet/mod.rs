//! The node agent's kubelet: registers the Node, keeps its Lease, and runs
//! the pods bound to it on the runtime (src/runtime), writing their status
//! back through the API like any other client.

pub mod backoff;
pub mod claims;
pub mod container;
pub mod etcfiles;
pub mod hooks;
pub mod logs;
pub mod network;
pub mod node;
pub mod pods;
pub mod probes;
pub mod satoken;
pub mod server;
pub mod stats;
pub mod status;
pub mod streams;
pub mod volumes;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::Ipv4Net;

use crate::runtime::containers::Runtime;
use crate::runtime::images::{Puller, RegistryConfig};

#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cluster_cidr: Ipv4Net,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    pub kubelet_port: u16,
    /// A server's node carries the control-plane role labels.
    pub server_node: bool,
}

impl KubeletConfig {
    pub fn new(
        node: &crate::config::NodeArgs,
        data_dir: &std::path::Path,
        node_ip: IpAddr,
        cluster_cidr: Ipv4Net,
        server_node: bool,
    ) -> KubeletConfig {
        KubeletConfig {
            node_name: node.name(),
            node_ip,
            data_dir: data_dir.to_path_buf(),
            run_dir: node.run_dir.clone(),
            log_dir: node.pod_log_dir.clone(),
            cluster_cidr,
            cluster_dns: node.cluster_dns,
            cluster_domain: node.cluster_domain.clone(),
            kubelet_port: node.kubelet_port,
            server_node,
        }
    }

    /// Per-pod files the kubelet prepares: volumes, /etc/hosts, resolv.conf.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("agent").join("pods").join(uid)
    }
}

/// Everything a pod worker needs, shared.
pub struct Kubelet {
    pub cfg: Arc<KubeletConfig>,
    pub client: kube::Client,
    pub runtime: Arc<Runtime>,
    pub puller: Puller,
    pub network: network::PodNetwork,
}

pub async fn run(
    cfg: KubeletConfig,
    client: kube::Client,
    registries: RegistryConfig,
    tls: server::KubeletTls,
) -> anyhow::Result<()> {
    let runtime = Runtime::open(&cfg.data_dir, &cfg.run_dir)?;
    let airgap = runtime.images().airgap_dir();
    if airgap.is_dir() {
        let store = runtime.images().clone();
        let imported = tokio::task::spawn_blocking(move || {
            crate::runtime::images::import::import_airgap_dir(&store, &airgap)
        })
        .await??;
        tracing::info!(images = imported.len(), "imported airgap images");
    }
    let puller = Puller::new(runtime.images().clone(), registries);
    let cfg = Arc::new(cfg);
    node::register(&client, &cfg).await?;
    node::renew_lease(&client, &cfg).await?;
    tokio::spawn(node::heartbeat(client.clone(), cfg.clone()));
    let pod_cidr = node::pod_cidr(&client, &cfg).await?;
    let network = network::PodNetwork::new(
        &cfg.data_dir.join("agent").join("ipam"),
        pod_cidr,
        cfg.cluster_cidr,
    )?;
    network.ensure_node().await?;
    let kubelet = Arc::new(Kubelet {
        cfg,
        client,
        runtime: Arc::new(runtime),
        puller,
        network,
    });
    let api = tokio::spawn(server::serve(kubelet.clone(), tls));
    tokio::select! {
        r = pods::run(kubelet) => r,
        r = api => r?,
    }
}
