//! Image garbage collection, after upstream's image GC manager: when the
//! disk holding the image store is fuller than `--image-gc-high-threshold`
//! percent, images no pod on this node uses are removed, least recently used
//! first, until usage is back under `--image-gc-low-threshold`; then the
//! store drops the blobs and snapshots nothing references any more. An
//! image is only removed once it has gone unused (or unseen, for one this
//! kubelet never saw in use) for `--minimum-image-ttl-duration`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{node, Kubelet};
use crate::runtime::images::store::{resolve_name, ImageRecord};

const INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(k: Arc<Kubelet>) {
    // When each image was last seen in use, or first seen at all.
    let mut last_used: HashMap<String, DateTime<Utc>> = HashMap::new();
    loop {
        tokio::time::sleep(INTERVAL).await;
        if let Err(e) = round(&k, &mut last_used).await {
            tracing::warn!(error = %format!("{e:#}"), "image garbage collection");
        }
    }
}

async fn round(k: &Kubelet, last_used: &mut HashMap<String, DateTime<Utc>>) -> anyhow::Result<()> {
    let store = k.runtime.images().clone();
    let (capacity, available) = node::disk_bytes(store.agent_dir());
    let Some(to_free) = bytes_to_free(
        capacity,
        available,
        k.cfg.node_ops.image_gc_high,
        k.cfg.node_ops.image_gc_low,
    ) else {
        return Ok(());
    };
    // Use is only looked at while the disk is full, so an idle node makes
    // no API calls for this; ages count from when that began.
    let in_use = images_in_use(k).await?;
    let now = Utc::now();
    for name in &in_use {
        last_used.insert(name.clone(), now);
    }
    let records = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.list()).await??
    };
    for r in &records {
        last_used.entry(r.name.clone()).or_insert(now);
    }
    let min_age = chrono::Duration::from_std(k.cfg.node_ops.image_min_age).unwrap_or_default();
    let old_enough: Vec<ImageRecord> = records
        .into_iter()
        .filter(|r| last_used.get(&r.name).is_some_and(|t| now - *t >= min_age))
        .collect();
    let victims = choose(old_enough, &in_use, last_used, to_free);
    if victims.is_empty() {
        tracing::warn!(
            to_free,
            "disk usage above the image GC threshold, but no unused image to remove"
        );
        return Ok(());
    }
    let removed = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut removed = vec![];
        for name in victims {
            if store.remove(&name)?.is_some() {
                removed.push(name);
            }
        }
        let report = store.gc()?;
        tracing::info!(images = ?removed, bytes = report.bytes, "image GC freed space");
        Ok(removed)
    })
    .await??;
    for name in removed {
        last_used.remove(&name);
    }
    Ok(())
}

/// Bytes to free to get from above `high` percent used down to `low`
/// percent; None while usage is not above `high`.
fn bytes_to_free(capacity: u64, available: u64, high: u8, low: u8) -> Option<u64> {
    if capacity == 0 {
        return None;
    }
    let used = capacity.saturating_sub(available);
    if used as u128 * 100 <= high as u128 * capacity as u128 {
        return None;
    }
    let target = (low as u128 * capacity as u128 / 100) as u64;
    Some(used.saturating_sub(target))
}

/// Unused images, least recently used first, until their sizes add up to
/// `to_free`.
fn choose(
    records: Vec<ImageRecord>,
    in_use: &HashSet<String>,
    last_used: &HashMap<String, DateTime<Utc>>,
    to_free: u64,
) -> Vec<String> {
    let mut unused: Vec<(DateTime<Utc>, ImageRecord)> = records
        .into_iter()
        .filter(|r| !in_use.contains(&r.name))
        .map(|r| (last_used.get(&r.name).copied().unwrap_or_default(), r))
        .collect();
    unused.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let mut freed = 0;
    let mut out = vec![];
    for (_, r) in unused {
        if freed >= to_free {
            break;
        }
        freed += r.size;
        out.push(r.name);
    }
    out
}

/// Store names of the images of this node's pods that are not finished.
async fn images_in_use(k: &Kubelet) -> anyhow::Result<HashSet<String>> {
    let api: Api<Pod> = Api::all(k.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", k.cfg.node_name));
    let pods = api.list(&lp).await?.items;
    let mut out = HashSet::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            continue;
        }
        let Some(spec) = pod.spec else { continue };
        let all = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in all {
            if let Some(name) = c.image.as_deref().and_then(|i| resolve_name(i).ok()) {
                out.insert(name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_down_to_the_low_watermark() {
        assert_eq!(bytes_to_free(1000, 200, 85, 80), None);
        assert_eq!(bytes_to_free(1000, 100, 85, 80), Some(100));
        assert_eq!(bytes_to_free(1000, 0, 85, 80), Some(200));
        assert_eq!(bytes_to_free(0, 0, 85, 80), None);
    }

    fn rec(name: &str, size: u64) -> ImageRecord {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "digest": format!("sha256:{}", "a".repeat(64)),
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "config_digest": format!("sha256:{}", "b".repeat(64)),
            "layers": [],
            "size": size,
            "imported": "2026-01-01T00:00:00Z",
        }))
        .expect("record")
    }

    #[test]
    fn least_recently_used_unused_images_go_first() {
        let records = vec![rec("a", 10), rec("b", 10), rec("c", 10), rec("busy", 10)];
        let in_use: HashSet<String> = ["busy".to_string()].into();
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let last: HashMap<String, DateTime<Utc>> = [
            ("a".to_string(), at("2026-01-05T00:00:00Z")),
            ("b".to_string(), at("2026-01-02T00:00:00Z")),
            ("c".to_string(), at("2026-01-03T00:00:00Z")),
            ("busy".to_string(), at("2025-01-01T00:00:00Z")),
        ]
        .into();
        assert_eq!(choose(records.clone(), &in_use, &last, 15), ["b", "c"]);
        assert_eq!(choose(records, &in_use, &last, 100), ["b", "c", "a"]);
    }
}
