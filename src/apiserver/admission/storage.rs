//! Volumes and claims: a claim's spec is fixed once made (quota and
//! binding rely on it) except growing its storage request, and a
//! StorageClass's provisioning settings are fixed.

use serde_json::{json, Value};

use crate::api::quantity::parse_quantity_value;

use super::field_error::FieldError;
use super::json::{arr_at, s, semantic_eq};
use super::resources::validate_quantity;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(spec: &Value, errs: &mut Vec<FieldError>) {
    let modes = arr_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                "spec.accessModes",
                &json!(m),
                ACCESS_MODES,
            ));
        }
    }
}

fn volume_mode(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(m) = spec.get("volumeMode").and_then(Value::as_str) {
        if m != "Block" && m != "Filesystem" {
            errs.push(FieldError::not_supported(
                "spec.volumeMode",
                &json!(m),
                &["Block", "Filesystem"],
            ));
        }
    }
}

pub fn validate_pvc(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    access_modes(spec, &mut errs);
    volume_mode(spec, &mut errs);
    let path = "spec.resources[storage]";
    match spec.pointer("/resources/requests/storage") {
        None => errs.push(FieldError::required(path, "")),
        Some(v) => {
            let (q, e) = validate_quantity("storage", v, path);
            errs.extend(e);
            if q.is_some_and(|q| q.is_zero()) {
                errs.push(FieldError::invalid_str(
                    path,
                    "0",
                    "must be greater than zero",
                ));
            }
        }
    }
    errs
}

/// Claims are immutable but for volumeName (once, by the binder) and, when
/// bound, a larger storage request.
pub fn validate_pvc_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let strip = |spec: Option<&Value>, keep_volume_name: bool| {
        let mut m = spec.and_then(Value::as_object).cloned().unwrap_or_default();
        if !keep_volume_name {
            m.remove("volumeName");
        }
        m.remove("volumeAttributesClassName");
        if bound {
            if let Some(req) = m
                .get_mut("resources")
                .and_then(|r| r.get_mut("requests"))
                .and_then(Value::as_object_mut)
            {
                req.remove("storage");
            }
        }
        Value::Object(m)
    };
    let old_has_volume = !s(old.get("spec").unwrap_or(&Value::Null), "volumeName").is_empty();
    let (n, o) = (
        strip(new.get("spec"), old_has_volume),
        strip(old.get("spec"), old_has_volume),
    );
    if !semantic_eq(Some(&n), Some(&o)) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(|q| parse_quantity_value(q).ok())
    };
    if let (Some(ns), Some(os)) = (size(new), size(old)) {
        if ns < os {
            errs.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
    }
    errs
}

pub fn validate_pv(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    access_modes(spec, &mut errs);
    volume_mode(spec, &mut errs);
    match spec.pointer("/capacity/storage") {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(v) => errs.extend(validate_quantity("storage", v, "spec.capacity[storage]").1),
    }
    if let Some(p) = spec
        .get("persistentVolumeReclaimPolicy")
        .and_then(Value::as_str)
    {
        const POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];
        if !POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                &json!(p),
                POLICIES,
            ));
        }
    }
    errs
}

pub fn validate_storage_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(obj, "provisioner").is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    }
    if let Some(p) = obj.get("reclaimPolicy").and_then(Value::as_str) {
        if p != "Delete" && p != "Retain" {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                &json!(p),
                &["Delete", "Retain"],
            ));
        }
    }
    if let Some(m) = obj.get("volumeBindingMode").and_then(Value::as_str) {
        if m != "Immediate" && m != "WaitForFirstConsumer" {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                &json!(m),
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
    }
    errs
}

pub fn validate_storage_class_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["parameters", "provisioner", "reclaimPolicy"] {
        if !semantic_eq(new.get(key), old.get(key)) {
            errs.push(FieldError::forbidden(
                key,
                &format!("updates to {key} are forbidden."),
            ));
        }
    }
    if !semantic_eq(new.get("volumeBindingMode"), old.get("volumeBindingMode")) {
        errs.push(FieldError::invalid(
            "volumeBindingMode",
            new.get("volumeBindingMode").unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(storage: &str) -> Value {
        json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": storage}}
        }})
    }

    fn text(e: Vec<FieldError>) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn claim_create() {
        assert!(validate_pvc(&pvc("1Gi")).is_empty());
        let e = text(validate_pvc(
            &json!({"spec": {"accessModes": ["Sometimes"]}}),
        ));
        assert_eq!(
            e,
            vec![
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources[storage]: Required value",
            ]
        );
        assert_eq!(
            text(validate_pvc(&json!({"spec": {}})))[0],
            "spec.accessModes: Required value: at least 1 access mode is required"
        );
    }

    #[test]
    fn claim_update() {
        let mut old = pvc("1Gi");
        old["status"] = json!({"phase": "Bound"});
        let mut new = old.clone();
        new["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(validate_pvc_update(&new, &old).is_empty());
        new["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        assert_eq!(
            text(validate_pvc_update(&new, &old)),
            vec!["spec.resources.requests.storage: Forbidden: field can not be less than previous value"]
        );
        let mut new = old.clone();
        new["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(validate_pvc_update(&new, &old)[0].field, "spec");
        // Unbound claims cannot be resized; the binder may set volumeName.
        let old = pvc("1Gi");
        let mut new = old.clone();
        new["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(validate_pvc_update(&new, &old)[0].field, "spec");
        let mut new = old.clone();
        new["spec"]["volumeName"] = json!("pv-1");
        assert!(validate_pvc_update(&new, &old).is_empty());
    }

    #[test]
    fn storage_class() {
        let old = json!({"provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"});
        assert!(validate_storage_class(&old).is_empty());
        let mut new = old.clone();
        new["reclaimPolicy"] = json!("Retain");
        assert_eq!(
            text(validate_storage_class_update(&new, &old)),
            vec!["reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden."]
        );
    }
}
