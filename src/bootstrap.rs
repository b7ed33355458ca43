//! What a fresh cluster has: the system namespaces, the `kubernetes`
//! Service with its Endpoints and the default StorageClass. Written
//! through the API like any client.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
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
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": { "name": "kubernetes", "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" } },
        "subsets": [{
            "addresses": [{ "ip": advertise.to_string() }],
            "ports": [{ "name": "https", "port": port, "protocol": "TCP" }],
        }],
    }))?;
    create_if_missing(&endpoints, &ep).await?;
    // k3s's default class: local folders on the node a claim's first pod
    // lands on (see controllers/localpath.rs).
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {
            "name": localpath::DEFAULT_CLASS,
            "annotations": { DEFAULT_CLASS_ANNOTATION: "true" },
        },
        "provisioner": localpath::PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))?;
    create_if_missing(&classes, &class).await?;
    Ok(())
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
