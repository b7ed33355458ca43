//! Serving custom resources: what a CRD's schema and versions mean for
//! writes and reads, and keeping the registry in step with stored CRDs.

pub mod columns;
pub mod defaults;
pub mod jsonpath;
pub mod prune;
pub mod sync;
pub mod validate;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::api::crd::CustomVersion;
use crate::api::registry::ResourceInfo;
use crate::apiserver::admission::field_error::FieldError;
use crate::apiserver::typed;

/// The object as it will be stored: metadata through the ObjectMeta type
/// (wrong types refused, unknown fields dropped) and undeclared fields
/// pruned. Returns the unknown field paths for fieldValidation.
pub fn normalize(custom: &CustomVersion, mut obj: Value) -> Result<(Value, Vec<String>), String> {
    let mut unknown = Vec::new();
    if let Some(meta) = obj.get("metadata").cloned() {
        let typed_meta: ObjectMeta =
            serde_json::from_value(meta.clone()).map_err(|e| format!("metadata: {e}"))?;
        let typed_meta = serde_json::to_value(typed_meta).map_err(|e| e.to_string())?;
        unknown.extend(
            typed::unknown_fields(&meta, &typed_meta)
                .into_iter()
                .map(|f| format!("metadata.{f}")),
        );
        obj["metadata"] = typed_meta;
    }
    if let Some(schema) = &custom.schema {
        unknown.extend(prune::prune(&mut obj, schema));
    }
    Ok((obj, unknown))
}

/// Schema defaults, for custom resources; nothing for built-in kinds.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    if let Some(schema) = info.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        defaults::apply(obj, schema);
    }
}

/// Schema violations, for custom resources; nothing for built-in kinds.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    match info.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        Some(schema) => validate::validate(obj, schema),
        None => Vec::new(),
    }
}

/// The stored form of an object: custom resources are kept at their
/// storage version whatever version wrote them (conversion strategy None).
pub fn to_stored(info: &ResourceInfo, obj: &Value) -> Vec<u8> {
    match &info.custom {
        Some(c) if c.storage_version != info.version => {
            let mut copy = obj.clone();
            copy["apiVersion"] = Value::String(format!("{}/{}", info.group, c.storage_version));
            crate::apiserver::object::to_stored(&copy)
        }
        _ => crate::apiserver::object::to_stored(obj),
    }
}

/// A stored object as served at the requested version.
pub fn to_served(info: &ResourceInfo, obj: &mut Value) {
    if info.custom.is_some() {
        obj["apiVersion"] = Value::String(info.api_version());
    }
}
