//! What the workload controllers share about the pods they own: controller
//! references, selectors, readiness and availability, which pods to give
//! up first, and creating a pod from a template (with its events).

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::writes;

/// The reference that makes `owner` the controller of an object.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller reference of an object, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether a selector matches labels; an unparsable selector matches
/// nothing (validation keeps those out, so this is only defence), and so
/// does an empty one, as upstream's controllers treat it.
pub fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if empty {
        return false;
    }
    let Ok(sel) = Selector::try_from(selector.clone()) else {
        return false;
    };
    sel.matches(labels.unwrap_or(&BTreeMap::new()))
}

/// Counts toward replicas: not being deleted, not finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// When the pod's Ready condition last turned true, if it is ready.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether a pod has been ready for `min_ready_seconds`; if it is ready but
/// not yet available, how many seconds are left.
pub fn availability(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> (bool, Option<i64>) {
    match ready_since(pod) {
        None => (false, None),
        Some(_) if min_ready_seconds <= 0 => (true, None),
        Some(None) => (false, Some(i64::from(min_ready_seconds))),
        Some(Some(since)) => {
            let left = i64::from(min_ready_seconds) - (now.as_second() - since.as_second());
            if left <= 0 {
                (true, None)
            } else {
                (false, Some(left))
            }
        }
    }
}

/// Orders pods so the cheapest to lose come first (upstream's
/// ActivePods ordering): unscheduled, pending, not ready, most restarts,
/// newest.
pub fn sort_for_deletion(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        let phase_rank = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            _ => 2,
        };
        let restarts: i32 = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            scheduled,
            phase_rank,
            is_ready(p),
            Reverse(restarts),
            Reverse(created),
        )
    });
}

/// A new pod from a template, owned by `owner`, named `<prefix><5 chars>`
/// by the API server.
pub fn from_template(template: &PodTemplateSpec, owner: OwnerReference, prefix: &str) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Creates `pod` for `owner` and records upstream's event on the owner:
/// SuccessfulCreate "Created pod: …" or FailedCreate "Error creating: …".
/// Returns the created pod's name.
pub async fn create<K: Resource<DynamicType = ()>>(
    api: &Api<Pod>,
    recorder: &Recorder,
    owner: &K,
    pod: &Pod,
) -> Result<String, kube::Error> {
    match api.create(&PostParams::default(), pod).await {
        Ok(p) => {
            let name = p.name_any();
            recorder
                .record(
                    owner,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {name}"),
                )
                .await;
            Ok(name)
        }
        Err(e) => {
            let msg = writes::message(&e);
            recorder
                .record(
                    owner,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {msg}"),
                )
                .await;
            Err(e)
        }
    }
}

/// The pods `owner` controls after adopting the orphans `matches` accepts
/// and releasing its pods it no longer accepts (upstream's
/// PodControllerRefManager). A deleting owner adopts nothing.
pub async fn claim<K: Resource<DynamicType = ()>>(
    client: &Client,
    cache: &Store<Pod>,
    owner: &K,
    matches: impl Fn(&Pod) -> bool,
) -> Result<Vec<Arc<Pod>>, kube::Error> {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut owned = Vec::new();
    for pod in cache.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let wanted = matches(&pod);
        match controller_of(&pod.metadata) {
            Some(c) if c.uid == uid => {
                if wanted {
                    owned.push(pod);
                } else {
                    let keep: Vec<_> = pod
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    patch_owners(&api, &pod, json!(keep)).await?;
                }
            }
            None if wanted
                && owner.meta().deletion_timestamp.is_none()
                && pod.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = pod.owner_references().to_vec();
                refs.push(controller_ref(owner));
                if patch_owners(&api, &pod, json!(refs)).await? {
                    owned.push(pod);
                }
            }
            _ => {}
        }
    }
    Ok(owned)
}

/// Rewrites a pod's owner references if it is unchanged since read; false
/// if it changed or went away (the next sync sees it anew).
async fn patch_owners(
    api: &Api<Pod>,
    pod: &Pod,
    refs: serde_json::Value,
) -> Result<bool, kube::Error> {
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": pod.resource_version(),
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The owners of kind `K` a change to a dependent concerns: its
/// controller, or for an orphan every owner in its namespace `selects`
/// accepts (so one may adopt it).
pub fn owners_of<K: Resource<DynamicType = ()> + Clone>(
    owners: &Store<K>,
    dependent: &ObjectMeta,
    selects: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>> {
    let ns = dependent.namespace.clone().unwrap_or_default();
    match controller_of(dependent) {
        Some(c) if c.kind == K::kind(&()) && c.api_version == K::api_version(&()) => {
            vec![ObjectRef::new(&c.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => owners
            .state()
            .iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(ns.as_str()) && selects(o))
            .map(|o| ObjectRef::from_obj(&**o))
            .collect(),
    }
}
