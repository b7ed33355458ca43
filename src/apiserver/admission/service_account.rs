//! Upstream's ServiceAccount admission for new Pods: the
//! `kube-api-access-<suffix>` projected volume (a bound token, the cluster
//! CA from `kube-root-ca.crt`, the namespace) mounted read-only at
//! /var/run/secrets/kubernetes.io/serviceaccount in every container,
//! unless the pod or its service account turns automounting off.

use serde_json::{json, Value};

use super::json::{each_obj_mut, Obj};
use super::plugins::Admitted;
use crate::apiserver::status::ApiResult;
use crate::apiserver::{object, stored};

pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The service account a pod runs as ("default" before defaulting).
pub fn service_account_name(pod: &Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// The plugin: the account's own automount setting is read from the store.
pub async fn admit(a: &Admitted<'_>, pod: &mut Value) -> ApiResult<()> {
    let sa_name = service_account_name(pod).to_string();
    let sa = stored::core_object(
        &*a.state.store,
        "serviceaccounts",
        Some(a.namespace),
        &sa_name,
    )
    .await?;
    let automount = sa
        .as_ref()
        .and_then(|sa| sa["automountServiceAccountToken"].as_bool());
    mount_api_access(pod, automount, &object::random_suffix(5));
    Ok(())
}

/// Adds the token volume and mounts to `pod`. `sa_automount` is the service
/// account's automountServiceAccountToken (None when unset or the account
/// is not there); the pod's own setting wins.
pub fn mount_api_access(pod: &mut Value, sa_automount: Option<bool>, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or(sa_automount)
        .unwrap_or(true);
    if !automount {
        return;
    }
    let volume = format!("kube-api-access-{suffix}");
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        each_obj_mut(spec, list, |c| mounted |= add_mount(c, &volume));
    }
    if !mounted {
        return;
    }
    let volumes = spec
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(v) = volumes.as_array_mut() {
        v.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
}

/// Mounts the volume in a container that has nothing at the token path yet.
fn add_mount(c: &mut Obj, volume: &str) -> bool {
    let mounts = c
        .entry("volumeMounts")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = mounts.as_array_mut() else {
        return false;
    };
    if list.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH) {
        return false;
    }
    list.push(json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_volume_and_mounts_unless_disabled() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}],
        }});
        mount_api_access(&mut pod, None, "abcde");
        let spec = &pod["spec"];
        assert_eq!(spec["volumes"][0]["name"], "kube-api-access-abcde");
        let sources = &spec["volumes"][0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
        // A container with its own mount there keeps it.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        for (pod_setting, sa) in [(Some(false), Some(true)), (None, Some(false))] {
            let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
            if let Some(p) = pod_setting {
                pod["spec"]["automountServiceAccountToken"] = json!(p);
            }
            mount_api_access(&mut pod, sa, "x");
            assert!(pod["spec"].get("volumes").is_none(), "{pod}");
        }
        let mut pod = json!({"spec": {"automountServiceAccountToken": true,
            "containers": [{"name": "a"}]}});
        mount_api_access(&mut pod, Some(false), "x");
        assert!(pod["spec"]["volumes"].is_array());
    }
}
