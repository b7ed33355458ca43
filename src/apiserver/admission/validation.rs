//! Validation of built-in kinds on create and update: which checks apply to
//! which kind. The checks themselves live in one module per concept.
//!
//! Objects are expected to be defaulted first (`defaults::apply_defaults`),
//! as upstream validates after defaulting; a field the defaulter always
//! sets is reported as required when missing.

use serde_json::Value;

pub use super::field_error::FieldError;
pub use super::names::{name_rule, validate_generate_name, validate_name, NameRule};
pub use crate::api::quantity::parse_quantity;

use super::config_data::{
    validate_config_map, validate_immutable_data, validate_secret, validate_secret_update,
};
use super::crd::{validate_crd, validate_crd_update};
use super::jobs::{validate_cron_job, validate_job, validate_job_update};
use super::metadata::{validate_object_meta, validate_object_meta_update};
use super::pod::{validate_pod, validate_pod_template};
use super::pod_update::validate_pod_update;
use super::rbac::{validate_binding, validate_binding_update};
use super::service::{validate_service, validate_service_update};
use super::storage::{
    validate_pv, validate_pvc, validate_pvc_update, validate_storage_class,
    validate_storage_class_update,
};
use super::workloads::{
    validate_daemon_set, validate_deployment, validate_replica_set,
    validate_replication_controller, validate_selector_immutable, validate_stateful_set,
    validate_stateful_set_update,
};

/// Kind-specific checks of a whole object, shared by create and update.
fn validate_kind(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    match (group, kind) {
        ("", "Pod") => validate_pod(obj),
        ("", "PodTemplate") => validate_pod_template(obj.get("template"), "template"),
        ("", "ReplicationController") => validate_replication_controller(obj),
        ("", "Service") => validate_service(obj),
        ("", "ConfigMap") => validate_config_map(obj),
        ("", "Secret") => validate_secret(obj),
        ("", "PersistentVolumeClaim") => validate_pvc(obj),
        ("", "PersistentVolume") => validate_pv(obj),
        ("apps", "Deployment") => validate_deployment(obj),
        ("apps", "ReplicaSet") => validate_replica_set(obj),
        ("apps", "StatefulSet") => validate_stateful_set(obj),
        ("apps", "DaemonSet") => validate_daemon_set(obj),
        ("batch", "Job") => validate_job(obj),
        ("batch", "CronJob") => validate_cron_job(obj),
        ("storage.k8s.io", "StorageClass") => validate_storage_class(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => validate_binding(obj, false),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => validate_binding(obj, true),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => validate_crd(obj),
        _ => Vec::new(),
    }
}

/// Everything wrong with a new object except its name (see
/// `validate_name`), which the caller checks with the kind's `name_rule`.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(obj);
    errs.extend(validate_kind(group, kind, obj));
    errs
}

/// Everything wrong with replacing `old` by `new`: the new object's own
/// validity plus what may not change.
pub fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(new, old);
    match (group, kind) {
        // Pod specs barely change; the update rules cover what may.
        ("", "Pod") => errs.extend(validate_pod_update(new, old)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            errs.extend(validate_crd_update(new, old))
        }
        _ => errs.extend(validate_kind(group, kind, new)),
    }
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            errs.extend(validate_selector_immutable(new, old))
        }
        ("apps", "StatefulSet") => errs.extend(validate_stateful_set_update(new, old)),
        ("batch", "Job") => errs.extend(validate_job_update(new, old)),
        ("", "Service") => errs.extend(validate_service_update(new, old)),
        ("", "ConfigMap") => {
            errs.extend(validate_immutable_data(new, old, &["data", "binaryData"]))
        }
        ("", "Secret") => errs.extend(validate_secret_update(new, old)),
        ("", "PersistentVolumeClaim") => errs.extend(validate_pvc_update(new, old)),
        ("storage.k8s.io", "StorageClass") => errs.extend(validate_storage_class_update(new, old)),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            errs.extend(validate_binding_update(new, old))
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::defaults::apply_defaults;
    use serde_json::json;

    fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
        apply_defaults(group, kind, &mut obj);
        obj
    }

    #[test]
    fn create_reports_metadata_and_spec() {
        let pod = defaulted(
            "",
            "Pod",
            json!({"metadata": {"name": "p", "labels": {"a": "-"}}, "spec": {"containers": []}}),
        );
        let errs: Vec<String> = validate_create("", "Pod", &pod)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("metadata.labels: Invalid value: \"-\""));
        assert_eq!(errs[1], "spec.containers: Required value");
    }

    #[test]
    fn namespace_name_is_a_label() {
        assert_eq!(name_rule("", "Namespace"), NameRule::DNS1123Label);
        let errs = validate_name(name_rule("", "Namespace"), "my.ns");
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"my.ns\": must not contain dots"
        );
    }

    #[test]
    fn update_checks_new_object_and_immutables() {
        let old = defaulted(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "d", "uid": "u"}, "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
            }}),
        );
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(validate_update("apps", "Deployment", &new, &old).is_empty());
        new["spec"]["selector"] = json!({"matchLabels": {"app": "b"}});
        let errs: Vec<String> = validate_update("apps", "Deployment", &new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0], "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"a\"}: `selector` does not match template `labels`");
        assert!(errs[1].starts_with("spec.selector: Invalid value: v1.LabelSelector{"));
    }

    #[test]
    fn pod_update_goes_through_pod_rules() {
        let old = defaulted(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}]}}),
        );
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("b");
        new["metadata"]["labels"] = json!({"x": "y"});
        assert!(validate_update("", "Pod", &new, &old).is_empty());
        new["spec"]["nodeName"] = json!("n1");
        assert_eq!(validate_update("", "Pod", &new, &old)[0].field, "spec");
    }

    #[test]
    fn config_map_immutability_through_update() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        let errs = validate_update("", "ConfigMap", &new, &old);
        assert_eq!(
            errs[0].to_string(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
    }

    #[test]
    fn quantity_helper_is_reexported() {
        assert_eq!(parse_quantity("250m").map(|q| q.milli_value()), Ok(250));
    }
}
