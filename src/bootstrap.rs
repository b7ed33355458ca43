//! What a fresh cluster has: the system namespaces, the `kubernetes`
//! Service with its Endpoints and EndpointSlice, the system
//! PriorityClasses and the default StorageClass. Written through the API
//! like any client.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

use crate::apiserver::admission::default_class::DEFAULT_CLASS_ANNOTATION;
use crate::controllers::localpath;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create what is missing; existing objects are left as they are.
pub async fn ensure(
    client: &Client,
    service_ip: IpAddr,
    advertise: IpAddr,
    port: u16,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in SYSTEM_NAMESPACES {
        let obj: Namespace = serde_json::from_value(json!({ "metadata": { "name": ns } }))?;
        create_if_missing(&namespaces, &obj).await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
        "spec": {
            "clusterIP": service_ip.to_string(),
            "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": port }],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    }))?;
    create_if_missing(&services, &svc).await?;
    // Like kube-apiserver's endpoint reconciler: the Service's endpoints are
    // this server's address and port, rewritten at every start so a new
    // address or --https-listen-port reaches in-cluster clients.
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": { "name": "kubernetes", "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" } },
        "subsets": [{
            "addresses": [{ "ip": advertise.to_string() }],
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        }],
    }))?;
    ensure_current(&endpoints, ep, |e| json!(e.subsets)).await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": { "name": "kubernetes", "labels": { "kubernetes.io/service-name": "kubernetes" } },
        "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{ "addresses": [advertise.to_string()], "conditions": { "ready": true } }],
        "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
    }))?;
    ensure_current(&slices, slice, |s| {
        json!([s.address_type, s.endpoints, s.ports, s.metadata.labels])
    })
    .await?;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    for (name, value, description) in crate::apiserver::admission::priority::SYSTEM_CLASSES {
        let class: PriorityClass = serde_json::from_value(json!({
            "metadata": { "name": name },
            "value": value,
            "description": description,
        }))?;
        create_if_missing(&classes, &class).await?;
    }
    // k3s's default class: local folders on the node a claim's first pod
    // lands on (see controllers/localpath.rs).
    let storage_classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {
            "name": localpath::DEFAULT_CLASS,
            "annotations": { DEFAULT_CLASS_ANNOTATION: "true" },
        },
        "provisioner": localpath::PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))?;
    create_if_missing(&storage_classes, &class).await?;
    Ok(())
}

/// Creates `want`, or replaces the stored object when the part `view`
/// picks out differs.
async fn ensure_current<K>(
    api: &Api<K>,
    mut want: K,
    view: impl Fn(&K) -> serde_json::Value,
) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = want.meta().name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => create_if_missing(api, &want).await,
        Some(have) if view(&have) == view(&want) => Ok(()),
        Some(have) => {
            want.meta_mut().resource_version = have.meta().resource_version.clone();
            api.replace(&name, &PostParams::default(), &want)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("updating {name}: {e}"))
        }
    }
}

async fn create_if_missing<K>(api: &Api<K>, obj: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    // Look first: a second create of the kubernetes Service would fail on
    // its (held) ClusterIP before its name.
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::anyhow!("creating {:?}: {e}", obj.meta().name)),
    }
}
