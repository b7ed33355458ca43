//! DefaultStorageClass admission: a claim created without
//! `storageClassName` gets the cluster's default class, the newest
//! StorageClass annotated `storageclass.kubernetes.io/is-default-class`.
//! An explicit class, even "", is left alone.

use serde_json::{json, Value};

use super::plugins::{list_in, Admitted};
use crate::apiserver::status::ApiResult;

pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The default class's name among stored StorageClasses, if any.
fn default_class(classes: &[Value]) -> Option<String> {
    classes
        .iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by(|a, b| {
            let key = |c: &Value| {
                (
                    c.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    c.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            };
            key(a).cmp(&key(b))
        })
        .and_then(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
}

/// Sets the default class on a new claim that names none.
pub async fn admit(a: &Admitted<'_>, claim: &mut Value) -> ApiResult<()> {
    if claim.pointer("/spec/storageClassName").is_some() {
        return Ok(());
    }
    let (_, listed) = list_in(a.state, "storage.k8s.io", "v1", "storageclasses", None).await?;
    let classes: Vec<Value> = listed.into_iter().map(|(c, _)| c).collect();
    if let (Some(class), Some(spec)) = (
        default_class(&classes),
        claim.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert("storageClassName".into(), json!(class));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_annotated_class_is_the_default() {
        let class = |name: &str, at: &str, default: bool| {
            json!({"metadata": {"name": name, "creationTimestamp": at,
                "annotations": {DEFAULT_CLASS_ANNOTATION: if default { "true" } else { "false" }}}})
        };
        assert_eq!(
            default_class(&[class("a", "2024-01-01T00:00:00Z", false)]),
            None
        );
        let classes = [
            class("old", "2024-01-01T00:00:00Z", true),
            class("new", "2025-01-01T00:00:00Z", true),
            class("other", "2026-01-01T00:00:00Z", false),
        ];
        assert_eq!(default_class(&classes).as_deref(), Some("new"));
    }
}
