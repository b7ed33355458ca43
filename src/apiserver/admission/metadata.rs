//! ObjectMeta rules every kind shares: label and annotation syntax,
//! finalizer names, owner references, and what an update may not touch.

use serde_json::{json, Value};

use super::field_error::{go_value, FieldError};
use super::json::semantic_eq;
use super::syntax::{is_dns1123_label, is_qualified_name, is_valid_label_value};

/// Upstream's TotalAnnotationSizeLimitB.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Label keys must be qualified names, values valid label values.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid_str(path, k, &m));
        }
        let v = v.as_str().unwrap_or("");
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(path, v, &m));
        }
    }
    errs
}

/// Annotation keys are qualified names (case-insensitively); values are
/// free but all of them together are capped.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in map {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path, k, &m));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(FieldError::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
    errs
}

fn validate_finalizers(meta: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in meta
        .get("finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = f.as_str().unwrap_or("");
        for m in is_qualified_name(name) {
            errs.push(FieldError::invalid_str("metadata.finalizers", name, &m));
        }
    }
    errs
}

fn validate_owner_references(meta: &Value) -> Vec<FieldError> {
    let path = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let mut controllers: Vec<String> = Vec::new();
    for r in meta
        .get("ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let api_version = get("apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid_str(
                format!("{path}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if get("kind").is_empty() {
            errs.push(FieldError::invalid_str(
                format!("{path}.kind"),
                "",
                "kind must not be empty",
            ));
        }
        if get("name").is_empty() {
            errs.push(FieldError::invalid_str(
                format!("{path}.name"),
                "",
                "name must not be empty",
            ));
        }
        if get("uid").is_empty() {
            errs.push(FieldError::invalid_str(
                format!("{path}.uid"),
                "",
                "uid must not be empty",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", get("kind"), get("name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            meta.get("ownerReferences").unwrap_or(&Value::Null),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {} and {}",
                controllers[0], controllers[1]
            ),
        ));
    }
    errs
}

/// Metadata of any object being created (the name is checked separately,
/// by kind).
pub fn validate_object_meta(obj: &Value) -> Vec<FieldError> {
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    if let Some(ns) = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        for m in is_dns1123_label(ns) {
            errs.push(FieldError::invalid_str("metadata.namespace", ns, &m));
        }
    }
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        "metadata.annotations",
    ));
    errs.extend(validate_finalizers(meta));
    errs.extend(validate_owner_references(meta));
    errs
}

/// Metadata of an object being replaced: everything checked on create, plus
/// identity fields that may never change and no new finalizers once the
/// object is being deleted.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(new);
    let nm = new.get("metadata").unwrap_or(&Value::Null);
    let om = old.get("metadata").unwrap_or(&Value::Null);
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let (n, o) = (nm.get(key), om.get(key));
        // The server carries uid and timestamps over when a client omits
        // them; only an explicit different value is a change.
        let omitted = n.is_none_or(Value::is_null) && key != "name" && key != "namespace";
        if !omitted && !semantic_eq(n, o) {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                n.unwrap_or(&json!("")),
                "field is immutable",
            ));
        }
    }
    if om.get("deletionTimestamp").is_some_and(|v| !v.is_null()) {
        let old_f: Vec<&str> = om
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let added: Vec<Value> = nm
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.as_str().is_some_and(|s| !old_f.contains(&s)))
            .cloned()
            .collect();
        if !added.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_value(&Value::Array(added))
                ),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_annotations() {
        let obj = json!({"metadata": {
            "labels": {"good": "yes", "bad key": "v", "k": "-bad"},
            "annotations": {"Example.com/Thing": "x", "a b": "y"}
        }});
        let errs = validate_object_meta(&obj);
        let fields: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{fields:?}");
        assert!(fields[0]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"));
        assert!(fields[1]
            .starts_with("metadata.labels: Invalid value: \"-bad\": a valid label must be"));
        assert!(fields[2].starts_with("metadata.annotations: Invalid value: \"a b\""));
    }

    #[test]
    fn annotations_size() {
        let big = "x".repeat(ANNOTATIONS_MAX_BYTES);
        let errs = validate_object_meta(&json!({"metadata": {"annotations": {"a": big}}}));
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(errs[0].reason, "FieldValueTooLong");
    }

    #[test]
    fn owner_references() {
        let errs = validate_object_meta(&json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "", "controller": true}
        ]}}));
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "metadata.ownerReferences.uid");
        assert!(errs[1]
            .message
            .contains("Only one reference can have Controller set to true"));
    }

    #[test]
    fn immutable_identity_and_finalizers() {
        let old = json!({"metadata": {"name": "a", "uid": "u1", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x"]}});
        let new = json!({"metadata": {"name": "b", "uid": "u1", "finalizers": ["x", "y"]}});
        let errs = validate_object_meta_update(&new, &old);
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "metadata.name: Invalid value: \"b\": field is immutable".to_string(),
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"y\"}".to_string(),
            ]
        );
        // Omitting the uid is not a change.
        let new = json!({"metadata": {"name": "a"}});
        assert!(
            validate_object_meta_update(&new, &json!({"metadata": {"name": "a", "uid": "u"}}))
                .is_empty()
        );
    }
}
