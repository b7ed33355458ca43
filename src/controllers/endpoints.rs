//! Endpoints and EndpointSlices for Services with a selector (upstream's
//! endpoints-controller and endpointslice-controller): the selected pods
//! that have an IP, ready or not, with each Service port resolved against
//! the pod (named targetPorts look up the container port of that name).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

use super::informers::Informers;

pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const HEADLESS: &str = "service.kubernetes.io/headless";

/// Keys waiting for a sync, deduplicated.
#[derive(Default)]
struct WorkQueue {
    keys: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl WorkQueue {
    fn add(&self, key: String) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        self.wake.notify_one();
    }

    async fn take(&self) -> BTreeSet<String> {
        loop {
            let keys = std::mem::take(&mut *self.keys.lock().unwrap_or_else(|e| e.into_inner()));
            if !keys.is_empty() {
                return keys;
            }
            self.wake.notified().await;
        }
    }
}

pub async fn run(informers: Informers) {
    let client = informers.client();
    let services = informers.get::<Service>();
    let pods = informers.get::<Pod>();
    services.ready().await;
    pods.ready().await;
    let queue = Arc::new(WorkQueue::default());
    {
        let queue = queue.clone();
        let changes = services.changes();
        tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes);
            while let Some(s) = changes.next().await {
                queue.add(format!(
                    "{}/{}",
                    s.namespace().unwrap_or_default(),
                    s.name_any()
                ));
            }
        });
    }
    {
        // A pod change may matter to any Service of its namespace (its old
        // labels are gone), so all of them are looked at.
        let queue = queue.clone();
        let store = services.store();
        let changes = pods.changes();
        tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes);
            while let Some(p) = changes.next().await {
                let ns = p.namespace().unwrap_or_default();
                for s in store.state() {
                    if s.namespace().as_deref() == Some(ns.as_str()) && selector(&s).is_some() {
                        queue.add(format!("{ns}/{}", s.name_any()));
                    }
                }
            }
        });
    }
    let svc_store = services.store();
    let pod_store = pods.store();
    loop {
        for key in queue.take().await {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            if let Err(error) = sync(&client, &svc_store, &pod_store, ns, name).await {
                tracing::info!(service = %key, %error, "endpoints sync failed; retrying");
                let queue = queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    queue.add(key);
                });
            }
        }
    }
}

fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod's port for a Service port: a number as is, a name through the
/// pod's container ports (None: this pod does not serve that port).
fn resolve(pod: &Pod, target: Option<&IntOrString>, port: i32) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port),
        },
    }
}

/// One endpoint of the Service: a pod, its state and its resolved ports.
struct Member {
    pod: Arc<Pod>,
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    ports: Vec<SlicePort>,
}

fn members(svc: &Service, pods: &Store<Pod>) -> Vec<Member> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    let ns = svc.namespace().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut out: Vec<Member> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| sel.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|p| {
            let ip = p
                .status
                .as_ref()?
                .pod_ip
                .clone()
                .filter(|i| !i.is_empty())?;
            let terminating = p.metadata.deletion_timestamp.is_some();
            let serving = is_ready(&p) || publish;
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|sp| {
                    Some(SlicePort {
                        name: Some(sp.name.clone().unwrap_or_default()),
                        port: Some(resolve(&p, sp.target_port.as_ref(), sp.port)?),
                        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect();
            Some(Member {
                ip,
                ready: serving && !terminating,
                serving,
                terminating,
                ports,
                pod: p,
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip));
    out
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

/// The DNS hostname a pod has under a headless Service (hostname and
/// subdomain set, subdomain naming the Service).
fn hostname(pod: &Pod, svc: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    (spec.subdomain.as_deref() == Some(svc))
        .then(|| spec.hostname.clone())
        .flatten()
}

fn labels_for(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    let headless = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

/// Members grouped by their port lists: one subset, one slice each.
fn groups(members: &[Member]) -> Vec<(Vec<SlicePort>, Vec<&Member>)> {
    let mut groups: Vec<(Vec<SlicePort>, Vec<&Member>)> = Vec::new();
    for m in members {
        match groups.iter_mut().find(|(ports, _)| *ports == m.ports) {
            Some((_, list)) => list.push(m),
            None => groups.push((m.ports.clone(), vec![m])),
        }
    }
    groups
}

fn desired_endpoints(svc: &Service, members: &[Member]) -> Endpoints {
    let name = svc.name_any();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let subsets: Vec<EndpointSubset> = groups(members)
        .into_iter()
        .filter(|(ports, _)| !ports.is_empty())
        .filter_map(|(ports, list)| {
            let address = |m: &Member| EndpointAddress {
                ip: m.ip.clone(),
                hostname: hostname(&m.pod, &name),
                node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(target_ref(&m.pod)),
            };
            // Terminating pods leave Endpoints unless the Service publishes
            // not-ready addresses.
            let shown = list.iter().filter(|m| !m.terminating || publish);
            let ready: Vec<_> = shown
                .clone()
                .filter(|m| m.serving)
                .map(|m| address(m))
                .collect();
            let not_ready: Vec<_> = shown.filter(|m| !m.serving).map(|m| address(m)).collect();
            if ready.is_empty() && not_ready.is_empty() {
                return None;
            }
            Some(EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(
                    ports
                        .iter()
                        .map(|p| EndpointPort {
                            name: p.name.clone().filter(|n| !n.is_empty()),
                            port: p.port.unwrap_or(0),
                            protocol: p.protocol.clone(),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect(),
                ),
            })
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: svc.namespace(),
            labels: Some(labels_for(svc)).filter(|l| !l.is_empty()),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The slices' content (endpoints and ports), one per port group; a
/// Service with no endpoints keeps one empty placeholder slice.
fn desired_slices(svc: &Service, members: &[Member]) -> Vec<(Vec<Endpoint>, Vec<SlicePort>)> {
    let name = svc.name_any();
    let mut out: Vec<(Vec<Endpoint>, Vec<SlicePort>)> = groups(members)
        .into_iter()
        .map(|(ports, list)| {
            let endpoints = list
                .iter()
                .map(|m| Endpoint {
                    addresses: vec![m.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(m.ready),
                        serving: Some(m.serving),
                        terminating: Some(m.terminating),
                    }),
                    hostname: hostname(&m.pod, &name),
                    node_name: m.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                    target_ref: Some(target_ref(&m.pod)),
                    ..Default::default()
                })
                .collect();
            (endpoints, ports)
        })
        .collect();
    if out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out
}

async fn sync(
    client: &Client,
    services: &Store<Service>,
    pods: &Store<Pod>,
    ns: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let ep_api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let ours =
        ListParams::default().labels(&format!("{SERVICE_NAME}={name},{MANAGED_BY}={CONTROLLER}"));
    let found = services.get(&ObjectRef::new(name).within(ns));
    let gone = found.is_none();
    let Some(svc) = found.filter(|s| selector(s).is_some()) else {
        // Gone, or without a selector: not ours to fill (the kubernetes
        // Service's Endpoints are the API server's).
        if gone {
            if let Err(e) = ep_api.delete(name, &DeleteParams::default()).await {
                if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    return Err(e);
                }
            }
        }
        for s in slice_api.list(&ours).await? {
            slice_api
                .delete(&s.name_any(), &DeleteParams::default())
                .await?;
        }
        return Ok(());
    };
    let members = members(&svc, pods);

    let want = desired_endpoints(&svc, &members);
    match ep_api.get_opt(name).await? {
        None => {
            ep_api.create(&PostParams::default(), &want).await?;
        }
        Some(mut have)
            if have.subsets != want.subsets || have.metadata.labels != want.metadata.labels =>
        {
            have.subsets = want.subsets;
            have.metadata.labels = want.metadata.labels;
            ep_api.replace(name, &PostParams::default(), &have).await?;
        }
        Some(_) => {}
    }

    let mut existing = slice_api.list(&ours).await?.items;
    existing.sort_by_key(|s| s.name_any());
    let wanted = desired_slices(&svc, &members);
    let mut labels = labels_for(&svc);
    labels.insert(SERVICE_NAME.into(), name.into());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    let mut used = HashSet::new();
    for (i, (endpoints, ports)) in wanted.into_iter().enumerate() {
        let ports = (!ports.is_empty()).then_some(ports);
        match existing.get(i) {
            Some(have) => {
                used.insert(have.name_any());
                let same = have.endpoints == endpoints
                    && have.ports == ports
                    && have.metadata.labels.as_ref() == Some(&labels);
                if !same {
                    let mut s = have.clone();
                    s.endpoints = endpoints;
                    s.ports = ports;
                    s.metadata.labels = Some(labels.clone());
                    slice_api
                        .replace(&have.name_any(), &PostParams::default(), &s)
                        .await?;
                }
            }
            None => {
                let s = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner(&svc)]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints,
                    ports,
                };
                slice_api.create(&PostParams::default(), &s).await?;
            }
        }
    }
    for s in existing.iter().filter(|s| !used.contains(&s.name_any())) {
        slice_api
            .delete(&s.name_any(), &DeleteParams::default())
            .await?;
    }
    Ok(())
}
