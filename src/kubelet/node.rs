//! The Node object: registration, status (capacity, conditions, addresses,
//! nodeInfo) and the heartbeat Lease in kube-node-lease, as the kubelet keeps
//! them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::KubeletConfig;
use crate::apiserver::router::KUBE_VERSION;

/// How often the Lease is renewed and the node status re-sent.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
const LEASE_SECONDS: i32 = 40;
const POD_CIDR_POLL: Duration = Duration::from_millis(200);
/// Past this a missing podCIDR is worth a warning (no leader, or no range left).
const POD_CIDR_PATIENCE: Duration = Duration::from_secs(30);

pub fn labels(cfg: &KubeletConfig) -> BTreeMap<String, String> {
    let arch = crate::runtime::images::import::host_arch();
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.node_name.clone()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), arch.into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        ("beta.kubernetes.io/arch".into(), arch.into()),
        ("node.kubernetes.io/instance-type".into(), "kone".into()),
        ("beta.kubernetes.io/instance-type".into(), "kone".into()),
    ]);
    if cfg.server_node {
        l.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
        l.insert("node-role.kubernetes.io/master".into(), "true".into());
    }
    l
}

fn kubelet_version() -> String {
    format!("{KUBE_VERSION}+kone")
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    let text = read_trim("/etc/os-release");
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Total memory in KiB from /proc/meminfo (`MemTotal`), and what is available.
pub(super) fn memory_kib() -> (u64, u64) {
    let text = read_trim("/proc/meminfo");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Size and free bytes of the filesystem holding `path`.
// The casts matter on 32-bit targets (Raspberry Pi OS), where the fields are narrower.
#[allow(clippy::unnecessary_cast)]
pub(super) fn disk_bytes(path: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let f = s.fragment_size() as u64;
            (s.blocks() as u64 * f, s.blocks_available() as u64 * f)
        }
        Err(_) => (0, 0),
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    })
}

/// What the node reports now. `pressure` comes from the eviction checks.
pub fn status(cfg: &KubeletConfig, pressure: &Pressure) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mem_kib, _) = memory_kib();
    let (disk, _) = disk_bytes(&cfg.data_dir);
    let capacity = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{mem_kib}Ki"),
        "pods": "110",
        "ephemeral-storage": format!("{}Ki", disk / 1024),
        "hugepages-2Mi": "0",
    });
    let mut addresses = vec![json!({"type": "InternalIP", "address": cfg.node_ip.to_string()})];
    addresses.push(json!({"type": "Hostname", "address": cfg.node_name}));
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", pressure.memory, if pressure.memory { "KubeletHasInsufficientMemory" } else { "KubeletHasSufficientMemory" },
                if pressure.memory { "kubelet has insufficient memory available" } else { "kubelet has sufficient memory available" }, &now),
            condition("DiskPressure", pressure.disk, if pressure.disk { "KubeletHasDiskPressure" } else { "KubeletHasNoDiskPressure" },
                if pressure.disk { "kubelet has disk pressure" } else { "kubelet has no disk pressure" }, &now),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", &now),
            condition("Ready", true, "KubeletReady", "kubelet is posting ready status", &now),
        ],
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("kone://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": kubelet_version(),
            "kubeProxyVersion": kubelet_version(),
            "operatingSystem": "linux",
            "architecture": crate::runtime::images::import::host_arch(),
        },
    })
}

/// Node pressure as the eviction manager (eviction.rs) last saw it.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
}

/// Creates the Node, or takes over the existing one (a restart keeps its
/// podCIDR and whatever other controllers set). The podCIDR comes from the
/// node IPAM controller (see `pod_cidr`).
pub async fn register(client: &kube::Client, cfg: &KubeletConfig) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": cfg.node_name,
            "labels": labels(cfg),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"providerID": format!("kone://{}", cfg.node_name)},
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %cfg.node_name, "registered the node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels(cfg)}});
            nodes
                .patch(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .context("updating the node's labels")?;
        }
        Err(e) => return Err(e).context("registering the node"),
    }
    update_status(client, cfg, &Pressure::default()).await
}

/// The node's podCIDR, once the node IPAM controller has set it (the
/// kubelet's network cannot start without it, as upstream's waits too).
pub async fn pod_cidr(client: &kube::Client, cfg: &KubeletConfig) -> anyhow::Result<Ipv4Net> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut waited = Duration::ZERO;
    loop {
        let node = nodes
            .get(&cfg.node_name)
            .await
            .context("reading the node")?;
        if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
            return cidr
                .parse()
                .with_context(|| format!("the node's podCIDR {cidr:?}"));
        }
        if waited == POD_CIDR_PATIENCE {
            tracing::warn!(node = %cfg.node_name, "still waiting for a podCIDR from the node IPAM controller");
        }
        tokio::time::sleep(POD_CIDR_POLL).await;
        waited += POD_CIDR_POLL;
    }
}

pub async fn update_status(
    client: &kube::Client,
    cfg: &KubeletConfig,
    pressure: &Pressure,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": status(cfg, pressure)});
    nodes
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context("updating the node status")?;
    Ok(())
}

pub async fn renew_lease(client: &kube::Client, cfg: &KubeletConfig) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let patch = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": cfg.node_name},
        "spec": {
            "holderIdentity": cfg.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now,
        },
    });
    match leases
        .patch(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(patch)?;
            leases.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Heartbeats until the process ends: the Lease every 10 s, the status
/// every 10 s as well (cheap here, and conditions stay fresh).
pub async fn heartbeat(
    client: kube::Client,
    cfg: std::sync::Arc<KubeletConfig>,
    pressure: tokio::sync::watch::Receiver<Pressure>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&client, &cfg).await {
            tracing::warn!(error = %format!("{e:#}"), "renewing the node lease");
        }
        let p = *pressure.borrow();
        if let Err(e) = update_status(&client, &cfg, &p).await {
            tracing::warn!(error = %format!("{e:#}"), "updating the node status");
        }
    }
}
