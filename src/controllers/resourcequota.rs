//! ResourceQuota controller: `status.hard` mirrors the spec and
//! `status.used` is recounted from what the namespace holds (admission
//! charges new objects at once; this loop gives back what was deleted).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use crate::api::quantity::Quantity;
use crate::api::quota::{self, Usage};
use crate::api::registry;

use super::informers::Informers;
use super::retry::{self, Error};

/// Objects other than pods are not watched; their deletions are found by
/// recounting this often (upstream resyncs every five minutes).
const RESYNC: Duration = Duration::from_secs(15);

/// Core kinds that quota names without `count/`.
const LEGACY_KINDS: [&str; 7] = [
    "pods",
    "services",
    "persistentvolumeclaims",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

/// The kinds (group, plural) a quota's resource names count.
fn counted_kinds(hard: &[&str]) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = Vec::new();
    for key in hard {
        let kind = match quota::counted_by(key) {
            Some((g, p)) => Some((g.to_string(), p.to_string())),
            None => LEGACY_KINDS
                .iter()
                .find(|p| quota::tracks("", p, key))
                .map(|p| (String::new(), p.to_string())),
        };
        if let Some(k) = kind.filter(|k| !kinds.contains(k)) {
            kinds.push(k);
        }
    }
    kinds
}

/// The namespace's objects of one kind, as JSON.
async fn objects(
    client: &Client,
    ns: &str,
    group: &str,
    plural: &str,
) -> Result<Vec<Value>, Error> {
    let Some(info) = registry::all()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural && r.namespaced())
    else {
        return Ok(Vec::new());
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &super::namespace::api_resource(&info));
    let list = api.list(&ListParams::default()).await?;
    list.items
        .into_iter()
        .map(|o| serde_json::to_value(o).map_err(Error::from))
        .collect()
}

async fn reconcile(rq: Arc<ResourceQuota>, client: Arc<Client>) -> Result<Action, Error> {
    if rq.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rq.namespace().unwrap_or_default();
    let quota_json = serde_json::to_value(&*rq)?;
    let hard = rq
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let keys: Vec<&str> = hard.keys().map(String::as_str).collect();
    let mut used = Usage::new();
    for (group, plural) in counted_kinds(&keys) {
        let is_pods = group.is_empty() && plural == "pods";
        for obj in objects(&client, &ns, &group, &plural).await? {
            if quota::in_scope(&quota_json, is_pods, &obj) {
                quota::add(&mut used, &quota::usage(&group, &plural, &obj));
            }
        }
    }
    let used: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| {
            let q = used.get(*k).copied().unwrap_or_else(Quantity::zero);
            (k.to_string(), json!(q.canonical()))
        })
        .collect();
    let status = json!({"hard": hard, "used": used});
    let typed: ResourceQuotaStatus = serde_json::from_value(status.clone())?;
    if rq.status.as_ref() == Some(&typed) {
        return Ok(Action::requeue(RESYNC));
    }
    let old = serde_json::to_value(rq.status.clone().unwrap_or_default())?;
    let mut patch =
        json!({"metadata": {"resourceVersion": rq.resource_version()}, "status": status});
    // A merge patch keeps names it does not mention: drop those the spec lost.
    for part in ["hard", "used"] {
        for k in old
            .get(part)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if !hard.contains_key(k) {
                patch["status"][part][k] = Value::Null;
            }
        }
    }
    let api: Api<ResourceQuota> = Api::namespaced((*client).clone(), &ns);
    match api
        .patch_status(
            &rq.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(Action::requeue(RESYNC)),
        // Charged by admission meanwhile: recount from the new state.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Runs the resource quota controller until the process ends.
pub async fn run(informers: Informers) {
    let quotas = informers.get::<ResourceQuota>();
    let pod_informer = informers.get::<Pod>();
    quotas.ready().await;
    pod_informer.ready().await;
    let store = quotas.store();
    let lookup = store.clone();
    Controller::for_shared_stream(quotas.changes(), store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            let ns = pod.namespace();
            lookup
                .state()
                .iter()
                .filter(|q| q.namespace() == ns)
                .map(|q| ObjectRef::from_obj(&**q))
                .collect::<Vec<_>>()
        })
        .run(reconcile, retry::soon, Arc::new(informers.client()))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_resource_names() {
        assert_eq!(
            counted_kinds(&[
                "pods",
                "requests.cpu",
                "count/deployments.apps",
                "services.nodeports",
                "secrets"
            ]),
            vec![
                (String::new(), "pods".to_string()),
                ("apps".to_string(), "deployments".to_string()),
                (String::new(), "services".to_string()),
                (String::new(), "secrets".to_string()),
            ]
        );
    }
}
