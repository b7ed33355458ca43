//! PersistentVolume binder (upstream's persistentvolume-binder-controller):
//! a claim binds to the smallest Available volume that fits it (class,
//! access modes, capacity, selector, volume mode) or, for a class this
//! cluster provisions, to a new local-path volume; both sides then show
//! Bound. A volume whose claim is gone is Released, then deleted or kept
//! by its reclaim policy. Claims of WaitForFirstConsumer classes wait for
//! the scheduler's `volume.kubernetes.io/selected-node`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::informers::Informers;
use super::retry::{self, Error};
use super::{localpath, pods, writes};
use crate::api::quantity::parse_quantity;

pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

struct Ctx {
    client: Client,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    recorder: Recorder,
    storage_dir: PathBuf,
}

fn class_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn class_of_volume(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn requested(claim: &PersistentVolumeClaim) -> Option<crate::api::quantity::Quantity> {
    let q = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    parse_quantity(&q.0).ok()
}

fn capacity(pv: &PersistentVolume) -> Option<crate::api::quantity::Quantity> {
    let q = pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    parse_quantity(&q.0).ok()
}

/// Whether `pv` is free for `claim` or reserved for it.
fn available_for(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    match pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        None => pv.metadata.deletion_timestamp.is_none(),
        Some(r) => {
            r.name.as_deref() == Some(&claim.name_any())
                && r.namespace == claim.namespace()
                && r.uid
                    .as_ref()
                    .is_none_or(|u| Some(u) == claim.uid().as_ref())
        }
    }
}

/// Whether `pv` satisfies `claim`: same class, every requested access
/// mode, enough capacity, the claim's selector, the same volume mode.
fn fits(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(cs), Some(ps)) = (&claim.spec, &pv.spec) else {
        return false;
    };
    let modes = ps.access_modes.as_deref().unwrap_or_default();
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_string();
    class_of_claim(claim) == class_of_volume(pv)
        && cs.access_modes.iter().flatten().all(|m| modes.contains(m))
        && matches!((requested(claim), capacity(pv)), (Some(want), Some(have)) if have >= want)
        && cs
            .selector
            .as_ref()
            .is_none_or(|sel| pods::selects(sel, pv.metadata.labels.as_ref()))
        && mode(cs.volume_mode.as_ref()) == mode(ps.volume_mode.as_ref())
}

/// The smallest fitting volume, one reserved for the claim first.
fn best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [Arc<PersistentVolume>],
) -> Option<&'a Arc<PersistentVolume>> {
    volumes
        .iter()
        .filter(|pv| available_for(pv, claim) && fits(pv, claim))
        .min_by_key(|pv| {
            let reserved = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some();
            (!reserved, capacity(pv))
        })
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    let volumes = ctx.volumes.state();
    if !volume_name.is_empty() {
        let Some(pv) = ctx.volumes.get(&ObjectRef::new(&volume_name)) else {
            set_claim_phase(&ctx, &claim, "Lost", None).await?;
            return Ok(Action::await_change());
        };
        bind(&ctx, &claim, &pv).await?;
        return Ok(Action::await_change());
    }
    if let Some(pv) = best_match(&claim, &volumes) {
        bind(&ctx, &claim, pv).await?;
        return Ok(Action::await_change());
    }
    let class_name = class_of_claim(&claim);
    let class = ctx.classes.get(&ObjectRef::new(class_name));
    let delayed = class
        .as_ref()
        .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    let node = claim.annotations().get(SELECTED_NODE).cloned();
    match class.as_deref() {
        Some(c) if c.provisioner == localpath::PROVISIONER && (!delayed || node.is_some()) => {
            let Some(node) = node else {
                ctx.recorder
                    .record(
                        &*claim,
                        EventType::Warning,
                        "ProvisioningFailed",
                        "local-path volumes are made on a pod's node: use volumeBindingMode WaitForFirstConsumer",
                    )
                    .await;
                return Ok(Action::await_change());
            };
            let pv = localpath::provision(&ctx.client, &claim, c, &node, &ctx.storage_dir).await?;
            ctx.recorder
                .record(
                    &*claim,
                    EventType::Normal,
                    "ProvisioningSucceeded",
                    &format!("Successfully provisioned volume {}", pv.name_any()),
                )
                .await;
        }
        Some(_) if delayed => {
            ctx.recorder
                .record(
                    &*claim,
                    EventType::Normal,
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                )
                .await;
        }
        Some(c) => {
            ctx.recorder
                .record(
                    &*claim,
                    EventType::Normal,
                    "ExternalProvisioning",
                    &format!(
                        "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator",
                        c.provisioner
                    ),
                )
                .await;
        }
        None => {
            let reason = if class_name.is_empty() {
                "no persistent volumes available for this claim and no storage class is set"
                    .to_string()
            } else {
                format!("storageclass.storage.k8s.io \"{class_name}\" not found")
            };
            ctx.recorder
                .record(&*claim, EventType::Warning, "ProvisioningFailed", &reason)
                .await;
        }
    }
    set_claim_phase(&ctx, &claim, "Pending", None).await?;
    Ok(Action::await_change())
}

/// Binds both sides: the volume's claimRef, then the claim's volumeName
/// and annotations, then both statuses. Each step is skipped when done, so
/// a sync interrupted half way finishes the next time.
async fn bind(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<(), Error> {
    let ns = claim.namespace().unwrap_or_default();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let claim_ref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: Some(claim.name_any()),
        namespace: Some(ns.clone()),
        uid: claim.uid(),
        resource_version: claim.resource_version(),
        field_path: None,
    };
    let has_ref = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| r.uid == claim.uid());
    if !has_ref {
        let patch = json!({"spec": {"claimRef": claim_ref}, "metadata": {"resourceVersion": pv.resource_version()}});
        match pvs
            .patch(
                &pv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Taken by another claim meanwhile: the next sync looks again.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        writes::patch_status_with(&pvs, &pv.name_any(), &json!({"phase": "Bound"})).await?;
    }
    let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    if volume_name != Some(&pv.name_any()) || !claim.annotations().contains_key(BIND_COMPLETED) {
        let mut annotations = BTreeMap::from([(BIND_COMPLETED, "yes")]);
        if volume_name.is_none_or(str::is_empty) {
            annotations.insert(BOUND_BY_CONTROLLER, "yes");
        }
        let patch = json!({"metadata": {"annotations": annotations}, "spec": {"volumeName": pv.name_any()}});
        claims
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    set_claim_phase(ctx, claim, "Bound", Some(pv)).await
}

async fn set_claim_phase(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    phase: &str,
    pv: Option<&PersistentVolume>,
) -> Result<(), Error> {
    let status = claim.status.clone().unwrap_or_default();
    let modes = pv
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.access_modes.clone());
    let cap = pv
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.capacity.clone());
    if status.phase.as_deref() == Some(phase)
        && (pv.is_none() || (status.access_modes == modes && status.capacity == cap))
    {
        return Ok(());
    }
    let status = json!({"phase": phase, "accessModes": modes, "capacity": cap});
    Ok(writes::patch_status(&ctx.client, claim, &status).await?)
}

/// A volume's side: Available when free, Released when its claim is gone,
/// then reclaimed by policy.
async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let spec = pv.spec.clone().unwrap_or_default();
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let want = match &spec.claim_ref {
        None => "Available",
        Some(r) => {
            let name = r.name.clone().unwrap_or_default();
            let ns = r.namespace.clone().unwrap_or_default();
            // Read live: a lagging cache must never release (and so maybe
            // delete) a volume whose claim exists.
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            match claims.get_opt(&name).await? {
                Some(c) if r.uid.is_none() || c.uid() == r.uid => {
                    let volume = c.spec.as_ref().and_then(|s| s.volume_name.as_deref());
                    if volume == Some(pv.name_any().as_str()) {
                        "Bound"
                    } else if phase.is_empty() {
                        // Reserved for the claim; binding is under way.
                        "Available"
                    } else {
                        phase.as_str()
                    }
                }
                // A reservation for a claim not made yet keeps the volume.
                None if r.uid.is_none() => "Available",
                _ => "Released",
            }
        }
    };
    if want == "Released" {
        let policy = spec
            .persistent_volume_reclaim_policy
            .as_deref()
            .unwrap_or("Retain");
        if policy == "Delete" {
            if pv
                .annotations()
                .get(localpath::PROVISIONED_BY)
                .map(String::as_str)
                == Some(localpath::PROVISIONER)
            {
                if let Err(e) = localpath::remove(&pv, &ctx.storage_dir) {
                    ctx.recorder
                        .record(
                            &*pv,
                            EventType::Warning,
                            "VolumeFailedDelete",
                            &e.to_string(),
                        )
                        .await;
                    return Ok(Action::requeue(Duration::from_secs(10)));
                }
            }
            match api.delete(&pv.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::await_change());
        }
    }
    if phase != want {
        writes::patch_status_with(&api, &pv.name_any(), &json!({"phase": want})).await?;
    }
    Ok(Action::await_change())
}

/// Runs the binder (claims and volumes) until the process ends; local-path
/// volumes live under `storage_dir`.
pub async fn run(informers: Informers, storage_dir: PathBuf) {
    let client = informers.client();
    let claims = informers.get::<PersistentVolumeClaim>();
    let volumes = informers.get::<PersistentVolume>();
    let classes = informers.get::<StorageClass>();
    claims.ready().await;
    volumes.ready().await;
    classes.ready().await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        volumes: volumes.store(),
        classes: classes.store(),
        recorder: Recorder::new(client, "persistentvolume-controller"),
        storage_dir,
    });
    // A volume change concerns the claim it names, or every unbound claim
    // when it becomes free.
    let claim_store = claims.store();
    let claim_loop = Controller::for_shared_stream(claims.changes(), claims.store())
        .watches_shared_stream(volumes.changes(), move |pv: Arc<PersistentVolume>| match pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
        {
            Some(r) => vec![ObjectRef::new(r.name.as_deref().unwrap_or_default())
                .within(r.namespace.as_deref().unwrap_or_default())],
            None => claim_store
                .state()
                .iter()
                .filter(|c| {
                    c.spec
                        .as_ref()
                        .and_then(|s| s.volume_name.as_ref())
                        .is_none()
                })
                .map(|c| ObjectRef::from_obj(&**c))
                .collect(),
        })
        .run(reconcile_claim, retry::soon, ctx.clone())
        .for_each(|_| async {});
    let volume_store = volumes.store();
    let volume_loop = Controller::for_shared_stream(volumes.changes(), volumes.store())
        .watches_shared_stream(
            claims.changes(),
            move |claim: Arc<PersistentVolumeClaim>| {
                let uid = claim.uid();
                volume_store
                    .state()
                    .iter()
                    .filter(|pv| {
                        pv.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .is_some_and(|r| {
                                r.uid == uid
                                    || (r.name == Some(claim.name_any())
                                        && r.namespace == claim.namespace())
                            })
                    })
                    .map(|pv| ObjectRef::from_obj(&**pv))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile_volume, retry::soon, ctx)
        .for_each(|_| async {});
    futures::join!(claim_loop, volume_loop);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(size: &str, modes: &[&str], class: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": modes, "storageClassName": class,
                "resources": {"requests": {"storage": size}}},
        }))
        .unwrap()
    }

    fn volume(name: &str, size: &str, modes: &[&str], class: &str) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"tier": "fast"}},
                "spec": {"accessModes": modes, "storageClassName": class,
                    "capacity": {"storage": size}, "hostPath": {"path": "/x"}},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_smallest_fitting_volume_wins() {
        let c = claim("1Gi", &["ReadWriteOnce"], "");
        let vols = vec![
            volume("big", "10Gi", &["ReadWriteOnce"], ""),
            volume("small", "2Gi", &["ReadWriteOnce", "ReadOnlyMany"], ""),
            volume("tiny", "500Mi", &["ReadWriteOnce"], ""),
            volume("other-class", "1Gi", &["ReadWriteOnce"], "fast"),
            volume("rox", "1Gi", &["ReadOnlyMany"], ""),
        ];
        assert_eq!(
            best_match(&c, &vols).map(|v| v.name_any()).as_deref(),
            Some("small")
        );
        let mut sel = claim("1Gi", &["ReadWriteOnce"], "");
        sel.spec.as_mut().unwrap().selector =
            serde_json::from_value(json!({"matchLabels": {"tier": "slow"}})).unwrap();
        assert!(best_match(&sel, &vols).is_none());
    }

    #[test]
    fn a_volume_taken_by_another_claim_is_not_available() {
        let c = claim("1Gi", &["ReadWriteOnce"], "");
        let mut pv = (*volume("v", "1Gi", &["ReadWriteOnce"], "")).clone();
        pv.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            name: Some("other".into()),
            namespace: Some("ns".into()),
            ..ObjectReference::default()
        });
        assert!(!available_for(&pv, &c));
        pv.spec.as_mut().unwrap().claim_ref.as_mut().unwrap().name = Some("c".into());
        assert!(available_for(&pv, &c));
    }
}
