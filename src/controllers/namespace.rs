//! Namespace lifecycle: empty a Terminating namespace, then release it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Client;

use super::retry::{self, Error};
use crate::api::registry::{self, ResourceInfo};

/// The namespaced kinds to clear, one per storage (a kind served at two
/// versions is cleared once).
fn namespaced_kinds() -> Vec<Arc<ResourceInfo>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in registry::all().into_iter().filter(|r| r.namespaced()) {
        let prefix = r.storage_prefix();
        if !seen.contains(&prefix) {
            seen.push(prefix);
            out.push(r);
        }
    }
    out
}

/// The kube-rs description of a served kind, for dynamic clients.
pub fn api_resource(info: &ResourceInfo) -> ApiResource {
    ApiResource {
        group: info.group.to_string(),
        version: info.version.to_string(),
        api_version: info.api_version(),
        kind: info.kind.to_string(),
        plural: info.plural.to_string(),
    }
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let mut remaining = 0usize;
    for info in namespaced_kinds() {
        let api: Api<DynamicObject> =
            Api::namespaced_with((*client).clone(), &name, &api_resource(&info));
        let items = api.list(&ListParams::default()).await?;
        for item in &items.items {
            let Some(item_name) = item.metadata.name.as_deref() else {
                continue;
            };
            if item.metadata.deletion_timestamp.is_none() {
                match api.delete(item_name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            remaining += 1;
        }
    }
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "namespace still has content");
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    // Empty: drop our finalizer so the API server removes the namespace.
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect(),
        );
    }
    let namespaces: Api<Namespace> = Api::all((*client).clone());
    match namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::await_change())
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, retry::soon, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}
