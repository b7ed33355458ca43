//! What the server owns in an object's metadata, on create and on update.

use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;
use crate::apiserver::object::{self, meta_mut};

/// Kinds whose spec changes are counted in metadata.generation. Custom
/// resources always count them (every change but metadata, without a
/// status subresource).
fn tracks_generation(info: &ResourceInfo) -> bool {
    if info.custom.is_some() {
        return true;
    }
    info.has_status
        && !matches!(
            info.kind,
            "Pod" | "Node" | "Namespace" | "PersistentVolume" | "PersistentVolumeClaim" | "Service"
        )
}

/// Kinds whose status a client cannot set at create: the controllers own it.
fn status_starts_empty(info: &ResourceInfo) -> bool {
    if info.custom.is_some() {
        return info.has_status;
    }
    matches!(
        info.kind,
        "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "ReplicationController"
            | "HorizontalPodAutoscaler"
            | "PodDisruptionBudget"
            | "Ingress"
            | "Service"
            | "PersistentVolumeClaim"
            | "PersistentVolume"
            | "ResourceQuota"
            | "Pod"
            | "CertificateSigningRequest"
            | "CustomResourceDefinition"
    )
}

/// Stamp server-owned metadata on a new object.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    if status_starts_empty(info) {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    let track = tracks_generation(info);
    let m = meta_mut(obj);
    for k in [
        "resourceVersion",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        m.remove(k);
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    if track {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    if info.custom.is_some() {
        return;
    }
    match info.kind {
        "PersistentVolumeClaim" | "PersistentVolume" => {
            obj["status"] = json!({ "phase": "Pending" })
        }
        "Service" => obj["status"] = json!({ "loadBalancer": {} }),
        _ => {}
    }
}

/// Carry server-owned fields from the stored object into an update, and
/// keep spec and status apart: the main resource cannot change status, the
/// status subresource cannot change anything else.
pub fn prepare_update(info: &ResourceInfo, status_only: bool, old: &Value, new: &mut Value) {
    if status_only {
        let status = new.get("status").cloned();
        let rv = object::meta_str(new, "resourceVersion").map(String::from);
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        match rv {
            Some(rv) => meta_mut(new).insert("resourceVersion".into(), json!(rv)),
            None => meta_mut(new).remove("resourceVersion"),
        };
        return;
    }
    if info.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    let old_meta = object::meta(old);
    let field = |k: &str| old_meta.and_then(|m| m.get(k));
    let spec_changed = spec_changed(info, old, new);
    let m = meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match field(k) {
            Some(v) => m.insert(k.to_string(), v.clone()),
            None => m.remove(k),
        };
    }
    m.remove("selfLink");
    if tracks_generation(info) && spec_changed {
        let g = field("generation").and_then(Value::as_i64).unwrap_or(0);
        m.insert("generation".into(), json!(g + 1));
    }
}

fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    let ignored = if info.has_status {
        object::NOT_SPEC
    } else {
        &["metadata"]
    };
    !object::same_except(old, new, ignored)
}

/// Undo the generation bump of an update whose spec only looked changed
/// before defaulting (a client leaving out what defaulting fills back in).
pub fn settle_generation(info: &ResourceInfo, old: &Value, new: &mut Value) {
    if !tracks_generation(info) || spec_changed(info, old, new) {
        return;
    }
    match old.pointer("/metadata/generation") {
        Some(g) => meta_mut(new).insert("generation".into(), g.clone()),
        None => meta_mut(new).remove("generation"),
    };
}

/// The finalizers through which the garbage collector carries out
/// foreground and orphan deletion (upstream's names).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

/// True once an object being deleted has nothing left holding it.
pub fn ready_to_remove(obj: &Value) -> bool {
    if !object::is_deleting(obj) || !object::finalizers(obj).is_empty() {
        return false;
    }
    // A pod in its grace period waits for its kubelet's final delete (grace 0).
    let grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if grace > 0 {
        return false;
    }
    // A namespace is also held by spec.finalizers until its content is gone.
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::lookup;

    #[test]
    fn generation_counts_spec_changes_only() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let mut old =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
        prepare_create(&deploy, &mut old);
        assert_eq!(old["metadata"]["generation"], 1);
        assert!(old.get("status").is_none());
        old["status"] = json!({"replicas": 1});

        let mut same = old.clone();
        same["metadata"]["labels"] = json!({"a": "b"});
        same["status"] = json!({"replicas": 9});
        prepare_update(&deploy, false, &old, &mut same);
        assert_eq!(same["metadata"]["generation"], 1);
        assert_eq!(
            same["status"]["replicas"], 1,
            "main resource must not change status"
        );

        let mut changed = old.clone();
        changed["spec"]["replicas"] = json!(3);
        prepare_update(&deploy, false, &old, &mut changed);
        assert_eq!(changed["metadata"]["generation"], 2);

        let mut status = old.clone();
        status["spec"]["replicas"] = json!(7);
        status["status"] = json!({"replicas": 5});
        prepare_update(&deploy, true, &old, &mut status);
        assert_eq!(status["spec"]["replicas"], 1, "status must not change spec");
        assert_eq!(status["status"]["replicas"], 5);
    }

    #[test]
    fn removal_waits_for_finalizers() {
        let mut o =
            json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z", "finalizers": ["x"]}});
        assert!(!ready_to_remove(&o));
        o["metadata"]["finalizers"] = json!([]);
        assert!(ready_to_remove(&o));
        o["spec"] = json!({"finalizers": ["kubernetes"]});
        assert!(!ready_to_remove(&o));
    }
}
