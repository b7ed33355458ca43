//! A minimal `/stats/summary` (the kubelet Summary API): node memory and
//! filesystem, and the pods on the node by reference. Per-container CPU
//! and memory from cgroups are not collected yet.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::node::{disk_bytes, memory_kib};
use super::KubeletConfig;

pub fn summary(cfg: &KubeletConfig, pods: &[Pod]) -> Value {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (total_kib, available_kib) = memory_kib();
    let used = total_kib.saturating_sub(available_kib) * 1024;
    let (capacity, available) = disk_bytes(&cfg.data_dir);
    let pods: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({
                "podRef": {
                    "name": p.metadata.name,
                    "namespace": p.metadata.namespace,
                    "uid": p.metadata.uid,
                },
                "startTime": p.status.as_ref().and_then(|s| s.start_time.clone()),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": cfg.node_name,
            "memory": {
                "time": now,
                "availableBytes": available_kib * 1024,
                "usageBytes": used,
                "workingSetBytes": used,
            },
            "fs": {
                "time": now,
                "availableBytes": available,
                "capacityBytes": capacity,
                "usedBytes": capacity.saturating_sub(available),
            },
        },
        "pods": pods,
    })
}
