//! The built-in local-path provisioner, as k3s ships rancher's: a claim of
//! a `rancher.io/local-path` class gets a hostPath volume in a folder of
//! its own under the storage directory of the node its first pod was
//! scheduled to, pinned there by node affinity. The kubelet creates the
//! folder when it mounts it; a released volume's folder is removed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

pub const PROVISIONER: &str = "rancher.io/local-path";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub const DEFAULT_CLASS: &str = "local-path";

/// The volume's name for a claim (upstream's `pvc-<claim uid>`).
fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.uid().unwrap_or_default())
}

/// The volume a claim gets on `node`.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    storage_dir: &Path,
) -> PersistentVolume {
    let name = volume_name(claim);
    let ns = claim.namespace().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    let folder = storage_dir.join(format!("{name}_{ns}_{}", claim.name_any()));
    let capacity = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .map(|q| BTreeMap::from([("storage".to_string(), q)]));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                PROVISIONER.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes,
            capacity,
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: Some(claim.name_any()),
                namespace: Some(ns),
                uid: claim.uid(),
                resource_version: claim.resource_version(),
                field_path: None,
            }),
            host_path: Some(HostPathVolumeSource {
                path: folder.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class.name_any()),
            volume_mode: spec.volume_mode,
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// Creates the claim's volume (or finds it made by an earlier sync).
pub async fn provision(
    client: &Client,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    storage_dir: &Path,
) -> Result<PersistentVolume, kube::Error> {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volume_for(claim, class, node, storage_dir);
    match api.create(&PostParams::default(), &pv).await {
        Err(kube::Error::Api(e)) if e.code == 409 => api.get(&pv.name_any()).await,
        other => other,
    }
}

/// Removes a released volume's folder, if it is one of ours on this host.
pub fn remove(pv: &PersistentVolume, storage_dir: &Path) -> std::io::Result<()> {
    let Some(path) = pv
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| PathBuf::from(&h.path))
    else {
        return Ok(());
    };
    // Never follow a volume's path outside the storage folder.
    if path.parent() != Some(storage_dir) {
        return Ok(());
    }
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_is_pinned_to_the_node_and_reserved_for_the_claim() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data-web-0", "namespace": "default", "uid": "abc"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                "resources": {"requests": {"storage": "1Gi"}}},
        }))
        .unwrap();
        let class: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "local-path"}, "provisioner": PROVISIONER,
        }))
        .unwrap();
        let pv = volume_for(&claim, &class, "node-a", Path::new("/data/storage"));
        let v = serde_json::to_value(&pv).unwrap();
        assert_eq!(v["metadata"]["name"], "pvc-abc");
        assert_eq!(
            v["spec"]["hostPath"]["path"],
            "/data/storage/pvc-abc_default_data-web-0"
        );
        assert_eq!(v["spec"]["claimRef"]["uid"], "abc");
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
                ["values"][0],
            "node-a"
        );
    }
}
