//! The pod manager: watches the pods bound to this node and keeps one worker
//! task per pod, fed with each new version of it. At start, sandboxes whose
//! pod no longer exists (deleted while kone was down) are removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use super::worker::{self, PodUpdate};
use super::Kubelet;

pub async fn run(kubelet: Arc<Kubelet>) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(kubelet.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", kubelet.cfg.node_name));
    // Back-off: a server that went away is not hammered while it restarts.
    let mut stream = watcher::watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "watching this node's pods");
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) => {
                listed.insert(uid(&pod));
                dispatch(&kubelet, &mut workers, pod);
            }
            Event::InitDone => {
                // Pods gone while we were not watching.
                for (id, tx) in &workers {
                    if !listed.contains(id) {
                        tracing::debug!(pod = %id, "pod gone while not watching");
                        let _ = tx.send(PodUpdate::Gone);
                    }
                }
                remove_orphans(&kubelet, &listed).await;
            }
            Event::Apply(pod) => dispatch(&kubelet, &mut workers, pod),
            Event::Delete(pod) => {
                tracing::debug!(pod = %uid(&pod), "pod removed from the API");
                if let Some(tx) = workers.get(&uid(&pod)) {
                    let _ = tx.send(PodUpdate::Gone);
                }
            }
        }
        workers.retain(|_, tx| !tx.is_closed());
    }
    Ok(())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn dispatch(
    kubelet: &Arc<Kubelet>,
    workers: &mut HashMap<String, watch::Sender<PodUpdate>>,
    pod: Pod,
) {
    let id = uid(&pod);
    if id.is_empty() {
        return;
    }
    let update = PodUpdate::Pod(Arc::new(pod));
    match workers.get(&id) {
        Some(tx) if !tx.is_closed() => {
            let _ = tx.send(update);
        }
        _ => {
            let (tx, rx) = watch::channel(update);
            tokio::spawn(worker::run(kubelet.clone(), rx));
            workers.insert(id, tx);
        }
    }
}

/// Sandboxes on this node whose pod is not in the API any more.
async fn remove_orphans(kubelet: &Arc<Kubelet>, live: &HashSet<String>) {
    let rt = kubelet.runtime.clone();
    let alive = live.clone();
    let result = tokio::task::spawn_blocking(move || {
        for id in rt.sandbox_ids() {
            if alive.contains(&id) {
                continue;
            }
            tracing::info!(sandbox = %id, "removing the sandbox of a pod that no longer exists");
            match rt.sandbox(&id) {
                Ok(shim) => {
                    if let Err(e) = shim.shutdown() {
                        tracing::warn!(sandbox = %id, error = %format!("{e:#}"), "removing an orphaned sandbox");
                    }
                }
                Err(_) => {
                    let _ = std::fs::remove_dir_all(rt.run_dir().join("pods").join(&id));
                }
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "removing orphaned sandboxes");
    }
    // Addresses of pods that are gone (their sandbox may be gone already).
    match kubelet.network.allocations() {
        Ok(held) => {
            for (id, ip) in held {
                if !live.contains(&id) {
                    tracing::info!(pod = %id, %ip, "releasing the address of a pod that no longer exists");
                    if let Err(e) = kubelet.network.teardown(&id).await {
                        tracing::warn!(pod = %id, error = %format!("{e:#}"), "releasing an address");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "listing pod addresses"),
    }
}
