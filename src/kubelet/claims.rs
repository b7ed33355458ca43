//! `persistentVolumeClaim` volumes: the claim's bound volume, a hostPath
//! or local volume on this node, whose folder is bind-mounted like a
//! hostPath. A pod whose claim is not bound yet waits, saying so.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

/// The host folder behind the claim `name` in `ns`.
pub async fn resolve(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<PathBuf> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let claim = claims
        .get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("persistentvolumeclaim {name:?} not found"))?;
    let volume = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(volume) = volume.filter(|_| bound) else {
        anyhow::bail!("persistentvolumeclaim {name:?} is not bound yet");
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes.get_opt(&volume).await?.ok_or_else(|| {
        anyhow::anyhow!("persistentvolume {volume:?} of claim {name:?} not found")
    })?;
    let spec = pv.spec.unwrap_or_default();
    if let Some(hp) = spec.host_path {
        let path = PathBuf::from(hp.path);
        if hp.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&path)?;
        }
        return Ok(path);
    }
    if let Some(local) = spec.local {
        return Ok(PathBuf::from(local.path));
    }
    anyhow::bail!(
        "persistentvolume {volume:?}: only hostPath and local volumes can be mounted on this node"
    )
}
