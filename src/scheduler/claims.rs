//! Delayed volume binding, the scheduler's part: a pod's claims of
//! WaitForFirstConsumer classes that are not bound yet are told the chosen
//! node (`volume.kubernetes.io/selected-node`), so a provisioner makes
//! their volumes there. Unbound claims never keep a pod from a node; bound
//! ones keep it on the nodes their volume's node affinity allows.

use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::controllers::volumebinder::SELECTED_NODE;

/// Annotates the pod's delayed, unbound claims with `node`.
pub async fn select_node(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let classes: Api<StorageClass> = Api::all(client.clone());
    let names = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone());
    for name in names {
        let Some(claim) = claims.get_opt(&name).await? else {
            continue;
        };
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty())
            || claim.annotations().get(SELECTED_NODE).map(String::as_str) == Some(node)
        {
            continue;
        }
        let Some(class) = spec.storage_class_name.filter(|c| !c.is_empty()) else {
            continue;
        };
        let delayed = classes
            .get_opt(&class)
            .await?
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if delayed {
            let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
            claims
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// The required node affinity of the volumes bound to the pod's claims.
pub fn volume_affinity(
    pod: &Pod,
    claims: &Store<PersistentVolumeClaim>,
    volumes: &Store<PersistentVolume>,
) -> Vec<NodeSelector> {
    let ns = pod.namespace().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .filter_map(|c| claims.get(&ObjectRef::new(&c.claim_name).within(&ns)))
        .filter_map(|claim| claim.spec.as_ref()?.volume_name.clone())
        .filter_map(|name| volumes.get(&ObjectRef::new(&name)))
        .filter_map(|pv| pv.spec.as_ref()?.node_affinity.as_ref()?.required.clone())
        .collect()
}
