//! The pod-level cgroup, like upstream's pod container manager: before its
//! first container, `kubepods[/<qos>]/pod<uid>` gets the pod's cpu shares
//! (its requests), cpu quota and memory limit (the sum of its containers'
//! limits, when every container declares one) and the node's pod pids
//! limit. The containers' own cgroups nest inside, so a pod cannot exceed
//! what it asked for whatever its containers do. The pod's supervisor
//! removes the folders with the sandbox.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::scheduler::resources::{pod_limits, pod_requests};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CPU_PERIOD_US: i64 = 100_000;
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
const MIN_QUOTA_US: i64 = 1000;

#[derive(Debug, PartialEq, Default)]
pub struct PodLimits {
    pub cpu_shares: u64,
    pub cpu_quota_us: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub pids: Option<i64>,
}

/// The cgroup path of a pod of this QoS class, as upstream names it.
pub fn path(qos: &str, uid: &str) -> String {
    match qos {
        "Guaranteed" => format!("/kubepods/pod{uid}"),
        other => format!("/kubepods/{}/pod{uid}", other.to_lowercase()),
    }
}

/// What the pod cgroup holds, after upstream's ResourceConfigForPod.
pub fn limits(spec: &PodSpec, qos: &str, pod_max_pids: i64) -> PodLimits {
    let pids = (pod_max_pids > 0).then_some(pod_max_pids);
    if qos == "BestEffort" {
        return PodLimits {
            cpu_shares: MIN_SHARES,
            pids,
            ..Default::default()
        };
    }
    let milli = |nanos: i128| (nanos / 1_000_000) as i64;
    let requests = pod_requests(spec);
    let limits = pod_limits(spec);
    let all = || {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
    };
    let declared = |name: &str| all().all(|c: &Container| has_limit(c, name));
    let cpu_req = milli(requests.get("cpu").copied().unwrap_or(0));
    let cpu_shares = ((cpu_req.max(0) as u64) * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES);
    let cpu_quota_us = declared("cpu")
        .then(|| milli(limits.get("cpu").copied().unwrap_or(0)))
        .filter(|m| *m > 0)
        .map(|m| (m * CPU_PERIOD_US / 1000).max(MIN_QUOTA_US));
    let memory_bytes = declared("memory")
        .then(|| (limits.get("memory").copied().unwrap_or(0) / 1_000_000_000) as i64)
        .filter(|b| *b > 0);
    PodLimits {
        cpu_shares,
        cpu_quota_us,
        memory_bytes,
        pids,
    }
}

fn has_limit(c: &Container, name: &str) -> bool {
    c.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| l.contains_key(name))
}

/// Creates the pod cgroup with its limits in every hierarchy that has the
/// controller: the v1 ones of a legacy or hybrid host, or the unified one.
pub fn apply(cgroup: &str, l: &PodLimits) -> anyhow::Result<()> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return apply_v2(root, cgroup, l);
    }
    let rel = cgroup.trim_start_matches('/');
    let quota = l.cpu_quota_us.unwrap_or(-1).to_string();
    let pids = l.pids.map_or("max".to_string(), |p| p.to_string());
    let memory = l.memory_bytes.unwrap_or(-1).to_string();
    let mut files: Vec<(&str, &str, String)> = vec![
        ("cpu", "cpu.shares", l.cpu_shares.to_string()),
        ("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
        ("cpu", "cpu.cfs_quota_us", quota),
        ("pids", "pids.max", pids),
    ];
    files.push(("memory", "memory.limit_in_bytes", memory));
    for (controller, file, value) in files {
        let hierarchy = root.join(controller);
        if !hierarchy.is_dir() {
            continue;
        }
        let dir = hierarchy.join(rel);
        fs::create_dir_all(&dir)?;
        write(&dir.join(file), &value)?;
    }
    Ok(())
}

fn apply_v2(root: &Path, cgroup: &str, l: &PodLimits) -> anyhow::Result<()> {
    // Each ancestor hands cpu, memory and pids down to its children.
    let mut dir = root.to_path_buf();
    for part in cgroup.trim_matches('/').split('/') {
        write(&dir.join("cgroup.subtree_control"), "+cpu +memory +pids")?;
        dir.push(part);
        fs::create_dir_all(&dir)?;
    }
    let weight = 1 + ((l.cpu_shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES);
    let max = l.cpu_quota_us.map_or(format!("max {CPU_PERIOD_US}"), |q| {
        format!("{q} {CPU_PERIOD_US}")
    });
    let memory = l.memory_bytes.map_or("max".to_string(), |b| b.to_string());
    let pids = l.pids.map_or("max".to_string(), |p| p.to_string());
    for (file, value) in [
        ("cpu.weight", weight.to_string()),
        ("cpu.max", max),
        ("memory.max", memory),
        ("pids.max", pids),
    ] {
        write(&dir.join(file), &value)?;
    }
    Ok(())
}

/// The pod's memory working set (usage less inactive page cache), as
/// upstream's eviction manager measures it; 0 when unknown.
pub fn working_set(cgroup: &str) -> u64 {
    let root = Path::new(CGROUP_ROOT);
    let rel = cgroup.trim_start_matches('/');
    let (dir, usage_file, inactive_key) = if root.join("cgroup.controllers").exists() {
        (root.join(rel), "memory.current", "inactive_file ")
    } else {
        (
            root.join("memory").join(rel),
            "memory.usage_in_bytes",
            "total_inactive_file ",
        )
    };
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
    let usage: u64 = read(usage_file).trim().parse().unwrap_or(0);
    let inactive: u64 = read("memory.stat")
        .lines()
        .find_map(|l| l.strip_prefix(inactive_key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    usage.saturating_sub(inactive)
}

fn write(file: &PathBuf, value: &str) -> anyhow::Result<()> {
    fs::write(file, value)
        .map_err(|e| anyhow::anyhow!("writing {value:?} to {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("pod spec")
    }

    fn c(name: &str, res: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "resources": res})
    }

    #[test]
    fn guaranteed_pods_sum_their_containers() {
        let r = json!({"requests": {"cpu": "200m", "memory": "50Mi"},
                       "limits": {"cpu": "200m", "memory": "50Mi"}});
        let r2 = json!({"requests": {"cpu": "100m", "memory": "30Mi"},
                        "limits": {"cpu": "100m", "memory": "30Mi"}});
        let s = spec(json!({"containers": [c("a", r), c("b", r2)]}));
        assert_eq!(
            limits(&s, "Guaranteed", 1024),
            PodLimits {
                cpu_shares: 307,
                cpu_quota_us: Some(30_000),
                memory_bytes: Some(80 << 20),
                pids: Some(1024),
            }
        );
    }

    #[test]
    fn burstable_limits_only_when_every_container_declares_one() {
        let s = spec(json!({"containers": [
            c("a", json!({"requests": {"cpu": "100m"}, "limits": {"memory": "20Mi"}})),
            c("b", json!({"requests": {"cpu": "50m"}}))]}));
        assert_eq!(
            limits(&s, "Burstable", -1),
            PodLimits {
                cpu_shares: 153,
                ..Default::default()
            }
        );
        let s = spec(json!({"containers": [
            c("a", json!({"limits": {"memory": "20Mi"}}))],
            "initContainers": [c("i", json!({"limits": {"memory": "40Mi"}}))]}));
        assert_eq!(limits(&s, "Burstable", -1).memory_bytes, Some(40 << 20));
    }

    #[test]
    fn best_effort_gets_minimum_shares() {
        let s = spec(json!({"containers": [{"name": "a"}]}));
        assert_eq!(limits(&s, "BestEffort", -1).cpu_shares, 2);
        assert_eq!(path("BestEffort", "u1"), "/kubepods/besteffort/podu1");
        assert_eq!(path("Guaranteed", "u1"), "/kubepods/podu1");
    }
}
