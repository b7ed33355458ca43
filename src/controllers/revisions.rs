//! ControllerRevisions: the template history StatefulSets and DaemonSets
//! keep (upstream's controller history). A revision stores the patch that
//! puts its template back, which is what `kubectl rollout undo` applies.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

use super::pods;

pub const HASH_LABEL: &str = "controller-revision-hash";

/// Tries at a new name before a clash with someone else's revision is an
/// error (each clash bumps the collision count, so the name changes).
const MAX_COLLISIONS: i32 = 5;

/// A hash as upstream spells it: FNV-1a over the bytes (and the collision
/// count), its decimal digits mapped to characters safe in names.
pub fn safe_hash(bytes: &[u8], collisions: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(bytes);
    if let Some(c) = collisions {
        feed(&c.to_le_bytes());
    }
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// The patch a revision stores: the whole template, replacing what is
/// there when applied as a strategic merge patch.
pub fn patch_of(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
pub fn template_of(rev: &ControllerRevision) -> PodTemplateSpec {
    let mut t = rev
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(o) = t.as_object_mut() {
        o.remove("$patch");
    }
    serde_json::from_value(t).unwrap_or_default()
}

/// The revisions `owner` controls, oldest first.
pub fn owned<K: Resource>(
    cache: &Store<ControllerRevision>,
    owner: &K,
) -> Vec<Arc<ControllerRevision>> {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    let ns = owner.meta().namespace.as_deref();
    let mut out: Vec<_> = cache
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == ns
                && pods::controller_of(&r.metadata).is_some_and(|c| c.uid == uid)
        })
        .collect();
    out.sort_by_key(|r| {
        (
            r.revision,
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    out
}

/// The revision holding `template`: an existing one with the same data
/// (moved to the newest number if it is older, as a rollback does), else a
/// new one numbered after the newest. `collisions` is the owner's
/// status.collisionCount, bumped when a name is taken by other data.
pub async fn ensure<K: Resource<DynamicType = ()>>(
    client: &Client,
    owner: &K,
    template: &PodTemplateSpec,
    history: &[Arc<ControllerRevision>],
    collisions: &mut i32,
) -> Result<ControllerRevision, kube::Error> {
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let data = patch_of(template);
    let newest = history.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(same) = history
        .iter()
        .rev()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        if same.revision == newest {
            return Ok((**same).clone());
        }
        let patch = json!({"revision": newest + 1});
        return api
            .patch(
                &same.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    }
    let bytes = serde_json::to_vec(&data).unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    loop {
        let hash = safe_hash(&bytes, (*collisions > 0).then_some(*collisions));
        let name = format!(
            "{}-{hash}",
            owner.meta().name.as_deref().unwrap_or_default()
        );
        labels.insert(HASH_LABEL.into(), hash);
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels.clone()),
                owner_references: Some(vec![pods::controller_ref(owner)]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: newest + 1,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(r) => return Ok(r),
            Err(kube::Error::Api(e)) if e.code == 409 && *collisions < MAX_COLLISIONS => {
                // Ours from a sync whose write the cache has not shown yet?
                let existing = api.get(&name).await?;
                let mine = pods::controller_of(&existing.metadata)
                    .is_some_and(|c| Some(&c.uid) == owner.meta().uid.as_ref());
                if mine && existing.data.as_ref().map(|d| &d.0) == Some(&data) {
                    return Ok(existing);
                }
                *collisions += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the oldest revisions no pod and no status names, beyond `keep`.
pub async fn truncate(
    client: &Client,
    history: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    keep: usize,
) -> Result<(), kube::Error> {
    let idle: Vec<_> = history
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let excess = idle.len().saturating_sub(keep);
    for rev in &idle[..excess] {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &rev.namespace().unwrap_or_default());
        match api.delete(&rev.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trips_through_its_patch() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        let data = patch_of(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..ControllerRevision::default()
        };
        assert_eq!(template_of(&rev), t);
    }
}
