//! The write path every create and update shares: decode, default,
//! validate, allocate.

use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::apiserver::admission::{defaults, priority, tolerations, validation};
use crate::apiserver::query::{FieldValidation, Query};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::typed;
use crate::apiserver::{body, custom};

/// Decode a body into the object to write, with upstream's field handling.
/// Returns the object and the warnings for the client.
pub fn decode_object(
    info: &ResourceInfo,
    headers: &http::HeaderMap,
    bytes: &[u8],
    query: &Query,
) -> ApiResult<(Value, Vec<String>)> {
    let mut obj = body::decode(headers, bytes)?;
    body::check_type(info, &mut obj)?;
    normalize(info, obj, query.field_validation()?)
}

/// Pass an object through its kind's type: refuse wrong types, drop (or with
/// Strict refuse) unknown fields.
pub fn normalize(
    info: &ResourceInfo,
    obj: Value,
    mode: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let cannot = |why: &str| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            info.kind, info.version, info.kind
        ))
    };
    let (typed, unknown) = match &info.custom {
        Some(c) => custom::normalize(c, obj).map_err(|e| cannot(&e))?,
        None => match typed::normalize(info, &obj) {
            Ok(Some(mut t)) => {
                let unknown = typed::unknown_fields(&obj, &t);
                crate::apiserver::protobuf::drop_empty(&info.api_version(), info.kind, &mut t);
                (t, unknown)
            }
            Ok(None) => return Ok((obj, Vec::new())),
            Err(e) => return Err(cannot(&e)),
        },
    };
    let unknown: Vec<String> = unknown
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    let mut warnings = match mode {
        FieldValidation::Strict if !unknown.is_empty() => {
            return Err(cannot(&format!(
                "strict decoding error: {}",
                unknown.join(", ")
            )))
        }
        FieldValidation::Warn => unknown,
        _ => Vec::new(),
    };
    if is_crd(info) && has_cel_rules(&typed) {
        warnings.push(
            "x-kubernetes-validations (CEL) rules are accepted but not enforced by this server"
                .into(),
        );
    }
    Ok((typed, warnings))
}

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition"
}

/// Whether a CRD's schemas carry CEL validation rules anywhere.
fn has_cel_rules(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| k == "x-kubernetes-validations" || has_cel_rules(x)),
        Value::Array(a) => a.iter().any(has_cel_rules),
        _ => false,
    }
}

/// Defaults then validation of a new object; 422 with causes on failure.
pub fn default_and_validate_create(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    defaults::apply_defaults(info.group, info.kind, obj);
    custom::apply_defaults(info, obj);
    if info.group == "batch" && info.kind == "Job" {
        let uid = crate::apiserver::object::uid(obj).to_string();
        defaults::default_job_selector(obj, &uid);
    }
    let name = crate::apiserver::object::name(obj)
        .unwrap_or("")
        .to_string();
    let mut errors = validation::validate_name(validation::name_rule(info.group, info.kind), &name);
    errors.extend(validation::validate_create(info.group, info.kind, obj));
    errors.extend(custom::validate(info, obj));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info.kind, info.group, &name, &errors))
    }
}

/// Defaults then validation of an updated object against the stored one.
pub fn default_and_validate_update(
    info: &ResourceInfo,
    new: &mut Value,
    old: &Value,
) -> ApiResult<()> {
    if info.group.is_empty() && info.kind == "Pod" && info.custom.is_none() {
        // The update half of the Priority and DefaultTolerationSeconds
        // plugins: what create added is kept (or added again).
        priority::carry_on_update(new, old);
        tolerations::admit(new);
    }
    defaults::apply_defaults(info.group, info.kind, new);
    custom::apply_defaults(info, new);
    let mut errors = validation::validate_update(info.group, info.kind, new, old);
    errors.extend(custom::validate(info, new));
    if errors.is_empty() {
        Ok(())
    } else {
        let name = crate::apiserver::object::name(new)
            .unwrap_or("")
            .to_string();
        Err(ApiError::invalid(info.kind, info.group, &name, &errors))
    }
}

/// The `Warning` header values for a response.
pub fn warning_headers(warnings: &[String]) -> Vec<http::HeaderValue> {
    warnings
        .iter()
        .filter_map(|w| {
            let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
            http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")).ok()
        })
        .collect()
}
