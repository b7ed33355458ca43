//! Decoding built-in kinds through their Go-equivalent types (k8s-openapi).
//!
//! Upstream decodes every write into the kind's Go struct: wrong types are
//! refused, unknown fields are dropped (or refused with
//! `fieldValidation=Strict`), and numbers where a quantity belongs become
//! strings. A round trip through the k8s-openapi type does the same here.

use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, autoscaling::v1 as autoscaling1,
    autoscaling::v2 as autoscaling2, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use serde_json::Value;

use crate::api::registry::ResourceInfo;

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    // Deserializing from the borrowed value spares a deep copy of it.
    let typed = T::deserialize(v).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The object as upstream would store it. `Ok(None)` for kinds without a
/// compiled-in type (nothing to check).
pub fn normalize(info: &ResourceInfo, obj: &Value) -> Result<Option<Value>, String> {
    macro_rules! kinds {
        ($( ($g:literal, $v:literal, $k:literal) => $t:ty ),* $(,)?) => {
            match (info.group, info.version, info.kind) {
                $( ($g, $v, $k) => round_trip::<$t>(obj).map(Some), )*
                _ => Ok(None),
            }
        };
    }
    kinds! {
        ("", "v1", "Namespace") => core::Namespace,
        ("", "v1", "Pod") => core::Pod,
        ("", "v1", "Service") => core::Service,
        ("", "v1", "Endpoints") => core::Endpoints,
        ("", "v1", "ConfigMap") => core::ConfigMap,
        ("", "v1", "Secret") => core::Secret,
        ("", "v1", "ServiceAccount") => core::ServiceAccount,
        ("", "v1", "Node") => core::Node,
        ("", "v1", "Event") => core::Event,
        ("", "v1", "PersistentVolume") => core::PersistentVolume,
        ("", "v1", "PersistentVolumeClaim") => core::PersistentVolumeClaim,
        ("", "v1", "LimitRange") => core::LimitRange,
        ("", "v1", "ResourceQuota") => core::ResourceQuota,
        ("", "v1", "ReplicationController") => core::ReplicationController,
        ("", "v1", "PodTemplate") => core::PodTemplate,
        ("apps", "v1", "Deployment") => apps::Deployment,
        ("apps", "v1", "ReplicaSet") => apps::ReplicaSet,
        ("apps", "v1", "StatefulSet") => apps::StatefulSet,
        ("apps", "v1", "DaemonSet") => apps::DaemonSet,
        ("apps", "v1", "ControllerRevision") => apps::ControllerRevision,
        ("batch", "v1", "Job") => batch::Job,
        ("batch", "v1", "CronJob") => batch::CronJob,
        ("networking.k8s.io", "v1", "Ingress") => networking::Ingress,
        ("networking.k8s.io", "v1", "IngressClass") => networking::IngressClass,
        ("networking.k8s.io", "v1", "NetworkPolicy") => networking::NetworkPolicy,
        ("discovery.k8s.io", "v1", "EndpointSlice") => discovery::EndpointSlice,
        ("coordination.k8s.io", "v1", "Lease") => coordination::Lease,
        ("rbac.authorization.k8s.io", "v1", "Role") => rbac::Role,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => rbac::RoleBinding,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => rbac::ClusterRole,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => rbac::ClusterRoleBinding,
        ("policy", "v1", "PodDisruptionBudget") => policy::PodDisruptionBudget,
        ("storage.k8s.io", "v1", "StorageClass") => storage::StorageClass,
        ("storage.k8s.io", "v1", "CSINode") => storage::CSINode,
        ("storage.k8s.io", "v1", "CSIDriver") => storage::CSIDriver,
        ("storage.k8s.io", "v1", "VolumeAttachment") => storage::VolumeAttachment,
        ("scheduling.k8s.io", "v1", "PriorityClass") => scheduling::PriorityClass,
        ("events.k8s.io", "v1", "Event") => events::Event,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => autoscaling2::HorizontalPodAutoscaler,
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => autoscaling1::HorizontalPodAutoscaler,
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => certificates::CertificateSigningRequest,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => apiextensions::CustomResourceDefinition,
        ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration") => admission::MutatingWebhookConfiguration,
        ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration") => admission::ValidatingWebhookConfiguration,
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy") => admission::ValidatingAdmissionPolicy,
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding") => admission::ValidatingAdmissionPolicyBinding,
    }
}

/// Paths of fields in `input` that the typed form dropped: unknown fields.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, normalized, "", &mut out);
    out
}

fn walk(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(tv) => walk(v, tv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, tv)) in a.iter().zip(b.iter()).enumerate() {
                walk(v, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::lookup;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_and_quantities_become_strings() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let input = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "creationTimestamp": null},
            "spec": {"replica": 3, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "imagePullPolice": "x", "resources": {"limits": {"cpu": 1}}}]}}}
        });
        let typed = normalize(&deploy, &input)
            .expect("decodes")
            .expect("known kind");
        assert_eq!(
            typed["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            unknown_fields(&input, &typed),
            vec![
                "spec.replica",
                "spec.template.spec.containers[0].imagePullPolice"
            ]
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        let cm = lookup("", "v1", "configmaps").expect("configmaps");
        assert!(normalize(&cm, &json!({"metadata": {"name": "x"}, "data": {"a": 1}})).is_err());
    }
}
