//! What every namespace holds: the `default` ServiceAccount (upstream's
//! serviceaccount-controller) and the `kube-root-ca.crt` ConfigMap with the
//! API server's CA (the root-ca-cert-publisher). Both are put back if
//! deleted, and the ConfigMap's data if changed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::informers::Informers;

pub const DEFAULT_SA: &str = "default";
pub const ROOT_CA: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Namespaces of objects with this name, as they change (a small watch of
/// its own: only one name per namespace is of interest).
fn named<K>(client: Client, name: &str) -> impl Stream<Item = String> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
{
    let api: Api<K> = Api::all(client);
    watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .filter_map(|e| async move {
        match e {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => o.namespace(),
            _ => None,
        }
    })
}

pub async fn run(informers: Informers, ca_pem: String) {
    let client = informers.client();
    let namespaces = informers.get::<Namespace>();
    namespaces.ready().await;
    let store = namespaces.store();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let feeds = futures::stream::select_all([
        namespaces.changes().map(|n| n.name_any()).boxed(),
        named::<ServiceAccount>(client.clone(), DEFAULT_SA).boxed(),
        named::<ConfigMap>(client.clone(), ROOT_CA).boxed(),
    ]);
    let feed_tx = tx.clone();
    tokio::spawn(async move {
        let mut feeds = feeds;
        while let Some(ns) = feeds.next().await {
            let _ = feed_tx.send(ns);
        }
    });
    while let Some(ns) = rx.recv().await {
        if let Err(error) = ensure(&client, &store, &ns, &ca_pem).await {
            tracing::info!(namespace = %ns, %error, "namespace defaults failed; retrying");
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(ns);
            });
        }
    }
}

async fn ensure(
    client: &Client,
    store: &Store<Namespace>,
    ns: &str,
    ca_pem: &str,
) -> Result<(), kube::Error> {
    let Some(namespace) = store.get(&ObjectRef::new(ns)) else {
        return Ok(());
    };
    let terminating = namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(());
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    if sas.get_opt(DEFAULT_SA).await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SA.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        tolerate_exists(sas.create(&PostParams::default(), &sa).await)?;
        tracing::debug!(namespace = %ns, "created the default ServiceAccount");
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let want = BTreeMap::from([("ca.crt".to_string(), ca_pem.to_string())]);
    match cms.get_opt(ROOT_CA).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(want),
                ..Default::default()
            };
            tolerate_exists(cms.create(&PostParams::default(), &cm).await)?;
        }
        Some(mut cm) if cm.data.as_ref() != Some(&want) => {
            cm.data = Some(want);
            cms.replace(ROOT_CA, &PostParams::default(), &cm).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn tolerate_exists<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
