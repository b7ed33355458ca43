//! Node-pressure eviction, after upstream's eviction manager with hard
//! thresholds only: every few seconds the node's signals (memory.available,
//! nodefs.available) are compared with `--eviction-hard`; the result drives
//! the MemoryPressure/DiskPressure conditions (the node lifecycle controller
//! turns them into taints), and while a threshold is crossed one pod per
//! round is evicted: pods using more than they requested first, then lower
//! priority, then the largest overuse, so BestEffort pods go before
//! Burstable ones and Guaranteed ones last. The pod's worker stops its
//! containers and reports it Failed with reason Evicted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::node::{self, Pressure};
use super::{podcgroup, worker, Kubelet, KubeletConfig};
use crate::api::quantity::parse_quantity;
use crate::scheduler::resources::pod_requests;

const INTERVAL: Duration = Duration::from_secs(5);
/// Pods at or above system-cluster-critical are never evicted.
const CRITICAL_PRIORITY: i32 = 2_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    MemoryAvailable,
    NodefsAvailable,
}

impl Signal {
    fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsAvailable => "ephemeral-storage",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub amount: Amount,
    /// As the user wrote it, for the eviction message.
    pub text: String,
}

/// Parses upstream's `--eviction-hard` syntax: `signal<quantity` or
/// `signal<percent%`, comma separated.
pub fn parse_thresholds(spec: &str) -> anyhow::Result<Vec<Threshold>> {
    let mut out = vec![];
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('<')
            .ok_or_else(|| anyhow::anyhow!("eviction threshold {item:?}: expected signal<value"))?;
        let signal = match name.trim() {
            "memory.available" => Signal::MemoryAvailable,
            // One filesystem holds both here.
            "nodefs.available" | "imagefs.available" => Signal::NodefsAvailable,
            other => anyhow::bail!("eviction threshold {item:?}: unsupported signal {other:?}"),
        };
        let value = value.trim();
        let amount = match value.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p
                    .parse()
                    .map_err(|_| anyhow::anyhow!("eviction threshold {item:?}: bad percentage"))?;
                anyhow::ensure!(
                    (0.0..=100.0).contains(&p),
                    "eviction threshold {item:?}: percentage out of range"
                );
                Amount::Percent(p)
            }
            None => {
                let q = parse_quantity(value)
                    .map_err(|e| anyhow::anyhow!("eviction threshold {item:?}: {e}"))?;
                Amount::Bytes(q.value().max(0) as u64)
            }
        };
        out.push(Threshold {
            signal,
            amount,
            text: value.to_string(),
        });
    }
    Ok(out)
}

/// What the node has of each signal: (capacity, available) in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observations {
    pub memory: (u64, u64),
    pub nodefs: (u64, u64),
}

pub fn observe(cfg: &KubeletConfig) -> Observations {
    let (total, avail) = node::memory_kib();
    Observations {
        memory: (total * 1024, avail * 1024),
        nodefs: node::disk_bytes(&cfg.data_dir),
    }
}

impl Threshold {
    /// The available amount when this threshold is crossed.
    fn crossed(&self, o: &Observations) -> Option<u64> {
        let (capacity, available) = match self.signal {
            Signal::MemoryAvailable => o.memory,
            Signal::NodefsAvailable => o.nodefs,
        };
        if capacity == 0 {
            return None;
        }
        let min = match self.amount {
            Amount::Bytes(b) => b as f64,
            Amount::Percent(p) => capacity as f64 * p / 100.0,
        };
        ((available as f64) < min).then_some(available)
    }
}

pub fn pressure(thresholds: &[Threshold], o: &Observations) -> Pressure {
    let crossed = |s: Signal| {
        thresholds
            .iter()
            .any(|t| t.signal == s && t.crossed(o).is_some())
    };
    Pressure {
        memory: crossed(Signal::MemoryAvailable),
        disk: crossed(Signal::NodefsAvailable),
    }
}

/// Pods the manager decided to evict, for their workers to act on; each
/// decision wakes the workers, which sleep long while their pod is settled.
pub struct Evictions {
    decided: Mutex<HashMap<String, String>>,
    posted: tokio::sync::watch::Sender<()>,
}

impl Default for Evictions {
    fn default() -> Self {
        Self {
            decided: Mutex::default(),
            posted: tokio::sync::watch::Sender::new(()),
        }
    }
}

impl Evictions {
    fn insert(&self, uid: &str, message: String) {
        self.lock().insert(uid.to_string(), message);
        self.posted.send_replace(());
    }

    /// Changes whenever a pod is chosen for eviction.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.posted.subscribe()
    }

    fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    /// The eviction message for a pod, once.
    pub fn take(&self, uid: &str) -> Option<String> {
        self.lock().remove(uid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.decided.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub async fn run(k: Arc<Kubelet>, pressure_tx: tokio::sync::watch::Sender<Pressure>) {
    let thresholds = k.cfg.node_ops.eviction_hard.clone();
    loop {
        tokio::time::sleep(INTERVAL).await;
        let cfg = k.cfg.clone();
        let Ok(o) = tokio::task::spawn_blocking(move || observe(&cfg)).await else {
            continue;
        };
        let p = pressure(&thresholds, &o);
        let changed = pressure_tx.send_if_modified(|old| std::mem::replace(old, p) != p);
        if changed {
            tracing::info!(memory = p.memory, disk = p.disk, "node pressure changed");
            if let Err(e) = node::update_status(&k.client, &k.cfg, &p).await {
                tracing::warn!(error = %format!("{e:#}"), "reporting node pressure");
            }
        }
        let Some((t, available)) = thresholds
            .iter()
            .find_map(|t| t.crossed(&o).map(|a| (t, a)))
        else {
            continue;
        };
        if let Err(e) = evict_one(&k, t, available).await {
            tracing::warn!(error = %format!("{e:#}"), "node-pressure eviction");
        }
    }
}

async fn evict_one(k: &Kubelet, t: &Threshold, available: u64) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(k.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", k.cfg.node_name));
    let pods = api.list(&lp).await?.items;
    let mut candidates: Vec<(Pod, Rank)> = vec![];
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let done = matches!(phase, Some("Succeeded") | Some("Failed"));
        if done || pod.metadata.deletion_timestamp.is_some() || k.evictions.contains(&uid) {
            continue;
        }
        if pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= CRITICAL_PRIORITY {
            continue;
        }
        let usage = usage(k, &pod, t.signal);
        let rank = rank(&pod, t.signal, usage);
        candidates.push((pod, rank));
    }
    candidates.sort_by(|a, b| a.1.cmp(&b.1));
    let Some((pod, _)) = candidates.into_iter().next() else {
        return Ok(());
    };
    let message = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}Ki. ",
        t.signal.resource(),
        t.text,
        available / 1024
    );
    tracing::info!(
        pod = %pod.metadata.name.as_deref().unwrap_or_default(),
        %message,
        "evicting a pod"
    );
    k.evictions
        .insert(pod.metadata.uid.as_deref().unwrap_or_default(), message);
    Ok(())
}

/// Eviction order: smaller first.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Rank {
    within_requests: bool,
    priority: i32,
    overuse: std::cmp::Reverse<i128>,
}

fn rank(pod: &Pod, signal: Signal, usage: u64) -> Rank {
    let requested = pod
        .spec
        .as_ref()
        .map(|s| pod_requests(s).get(signal.resource()).copied().unwrap_or(0) / 1_000_000_000)
        .unwrap_or(0);
    let overuse = usage as i128 - requested;
    Rank {
        within_requests: overuse <= 0 && requested > 0,
        priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
        overuse: std::cmp::Reverse(overuse),
    }
}

/// What a pod uses of the resource the signal measures: the working set of
/// its pod cgroup, or the bytes of its volumes and logs on the node's disk.
fn usage(k: &Kubelet, pod: &Pod, signal: Signal) -> u64 {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    match signal {
        Signal::MemoryAvailable => {
            let cgroup = podcgroup::path(&worker::qos_class(pod), &uid);
            podcgroup::working_set(&cgroup)
        }
        Signal::NodefsAvailable => {
            let logs = k.cfg.log_dir.join(format!(
                "{}_{}_{uid}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            ));
            du(&k.cfg.pod_dir(&uid)) + du(&logs)
        }
    }
}

/// Bytes of the regular files under `dir`, not following links or mounts
/// other than the pod's own folders.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds_parse_like_upstream() {
        let t = parse_thresholds("memory.available<100Mi, nodefs.available<10%").expect("parse");
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].amount, Amount::Bytes(100 << 20));
        assert_eq!(t[1].amount, Amount::Percent(10.0));
        assert!(parse_thresholds("memory.available>1Gi").is_err());
        assert!(parse_thresholds("pid.available<10").is_err());
        assert!(parse_thresholds("nodefs.available<120%").is_err());
        assert!(parse_thresholds("").expect("empty").is_empty());
    }

    #[test]
    fn crossing_a_threshold_is_pressure() {
        let t = parse_thresholds("memory.available<100Mi,nodefs.available<10%").expect("parse");
        let o = Observations {
            memory: (1 << 30, 50 << 20),
            nodefs: (1000, 200),
        };
        assert_eq!(
            pressure(&t, &o),
            Pressure {
                memory: true,
                disk: false
            }
        );
        let o = Observations {
            memory: (1 << 30, 500 << 20),
            nodefs: (1000, 50),
        };
        assert_eq!(
            pressure(&t, &o),
            Pressure {
                memory: false,
                disk: true
            }
        );
    }

    fn pod(requests: serde_json::Value, priority: i32) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"priority": priority,
            "containers": [{"name": "c", "resources": {"requests": requests}}]}}),
        )
        .expect("pod")
    }

    #[test]
    fn best_effort_and_overusers_go_first() {
        let m = Signal::MemoryAvailable;
        let best_effort = rank(&pod(json!({}), 0), m, 10 << 20);
        let within = rank(&pod(json!({"memory": "64Mi"}), 0), m, 10 << 20);
        let over = rank(&pod(json!({"memory": "1Mi"}), 0), m, 10 << 20);
        let important_best_effort = rank(&pod(json!({}), 1000), m, 10 << 20);
        let mut order = [&within, &important_best_effort, &over, &best_effort];
        order.sort();
        assert_eq!(
            order,
            [&best_effort, &over, &important_best_effort, &within]
        );
    }
}
