//! The node agent's kubelet: registers the Node, keeps its Lease, and runs
//! the pods bound to it on the runtime (src/runtime), writing their status
//! back through the API like any other client.

pub mod backoff;
pub mod claims;
pub mod container;
pub mod etcfiles;
pub mod events;
pub mod eviction;
pub mod exits;
pub mod fsgroup;
pub mod grpcprobe;
pub mod hooks;
pub mod imagegc;
pub mod logs;
pub mod network;
pub mod node;
pub mod podcgroup;
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

use crate::reconnect;
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
    pub node_ops: NodeOps,
}

/// How the node protects itself (`--pod-max-pids`, `--eviction-hard`,
/// `--image-gc-*-threshold`).
#[derive(Debug, Clone)]
pub struct NodeOps {
    pub pod_max_pids: i64,
    pub eviction_hard: Vec<eviction::Threshold>,
    pub image_gc_high: u8,
    pub image_gc_low: u8,
    pub image_min_age: std::time::Duration,
}

impl NodeOps {
    pub fn from_args(a: &crate::config::NodeOpsArgs) -> anyhow::Result<NodeOps> {
        anyhow::ensure!(
            a.image_gc_low_threshold <= a.image_gc_high_threshold
                && a.image_gc_high_threshold <= 100,
            "--image-gc-low-threshold must not exceed --image-gc-high-threshold (at most 100)"
        );
        Ok(NodeOps {
            pod_max_pids: a.pod_max_pids,
            eviction_hard: eviction::parse_thresholds(&a.eviction_hard)?,
            image_gc_high: a.image_gc_high_threshold,
            image_gc_low: a.image_gc_low_threshold,
            image_min_age: a.minimum_image_ttl_duration,
        })
    }
}

impl KubeletConfig {
    pub fn new(
        node: &crate::config::NodeArgs,
        data_dir: &std::path::Path,
        node_ip: IpAddr,
        cluster_cidr: Ipv4Net,
        server_node: bool,
    ) -> anyhow::Result<KubeletConfig> {
        Ok(KubeletConfig {
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
            node_ops: NodeOps::from_args(&node.ops)?,
        })
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
    pub events: events::PodEvents,
    pub evictions: eviction::Evictions,
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
    // An agent may start while its server is down; its pods run on.
    let (c, k) = (&client, &*cfg);
    reconnect::until_reachable("registering the node", || async move {
        node::register(c, k).await?;
        node::renew_lease(c, k).await
    })
    .await?;
    let (pressure_tx, pressure_rx) = tokio::sync::watch::channel(node::Pressure::default());
    tokio::spawn(node::heartbeat(client.clone(), cfg.clone(), pressure_rx));
    let events = events::PodEvents::start(client.clone(), &cfg.node_name);
    let pod_cidr =
        reconnect::until_reachable("reading the podCIDR", || node::pod_cidr(c, k)).await?;
    let network = network::PodNetwork::new(
        &cfg.data_dir.join("agent").join("ipam"),
        pod_cidr,
        cfg.cluster_cidr,
    )?;
    network.ensure_node().await?;
    let kubelet = Arc::new(Kubelet {
        cfg,
        client,
        events,
        evictions: eviction::Evictions::default(),
        runtime: Arc::new(runtime),
        puller,
        network,
    });
    let api = tokio::spawn(server::serve(kubelet.clone(), tls));
    tokio::spawn(eviction::run(kubelet.clone(), pressure_tx));
    tokio::spawn(imagegc::run(kubelet.clone()));
    tokio::select! {
        r = pods::run(kubelet) => r,
        r = api => r?,
    }
}
