//! ConfigMap and Secret payloads: keys that can be file names, a size cap
//! (they are held in memory by every kubelet that mounts them), and the
//! `immutable` flag that freezes them.

use base64::Engine;
use serde_json::{json, Value};

use super::field_error::FieldError;
use super::json::semantic_eq;
use super::syntax::is_config_map_key;

/// Upstream's MaxSecretSize, also used for ConfigMaps.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

fn keys_of(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_keys(obj: &Value, field: &str, errs: &mut Vec<FieldError>) {
    for key in keys_of(obj, field) {
        for m in is_config_map_key(&key) {
            errs.push(FieldError::invalid_str(format!("{field}[{key}]"), &key, &m));
        }
    }
}

/// Decoded length of a base64 value (binaryData, Secret data).
fn decoded_len(field: &str, key: &str, v: &Value, errs: &mut Vec<FieldError>) -> usize {
    let text = v.as_str().unwrap_or("");
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(bytes) => bytes.len(),
        Err(e) => {
            errs.push(FieldError::invalid_str(
                format!("{field}[{key}]"),
                "<secret contents redacted>",
                &e.to_string(),
            ));
            0
        }
    }
}

pub fn validate_config_map(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_keys(obj, "data", &mut errs);
    check_keys(obj, "binaryData", &mut errs);
    let binary = keys_of(obj, "binaryData");
    let mut total = 0;
    for (key, v) in obj
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if binary.contains(key) {
            errs.push(FieldError::invalid_str(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (key, v) in obj
        .get("binaryData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        total += decoded_len("binaryData", key, v, &mut errs);
    }
    if total > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("", MAX_DATA_BYTES));
    }
    errs
}

/// Secret types and the keys each one requires.
pub fn validate_secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_keys(obj, "data", &mut errs);
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0;
    for (key, v) in data.into_iter().flatten() {
        total += decoded_len("data", key, v, &mut errs);
    }
    if total > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("data", MAX_DATA_BYTES));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => required_json_key(obj, ".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => required_json_key(obj, ".dockerconfigjson", &mut errs),
        // Either may be empty, but one must be there.
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" => {
            let empty = data
                .and_then(|d| d.get("ssh-privatekey"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if empty {
                errs.push(FieldError::required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

/// Docker config secrets must hold well-formed JSON under their key.
fn required_json_key(obj: &Value, key: &str, errs: &mut Vec<FieldError>) {
    let Some(v) = obj.get("data").and_then(|d| d.get(key)) else {
        errs.push(FieldError::required(format!("data[{key}]"), ""));
        return;
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default();
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes) {
        errs.push(FieldError::invalid_str(
            format!("data[{key}]"),
            "<secret contents redacted>",
            &e.to_string(),
        ));
    }
}

/// Once `immutable: true`, the payload and the flag are frozen.
pub fn validate_immutable_data(new: &Value, old: &Value, fields: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return errs;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if !semantic_eq(new.get(*f), old.get(*f)) {
            errs.push(FieldError::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

pub fn validate_secret_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (nt, ot) = (new.get("type"), old.get("type"));
    if !semantic_eq(nt, ot) {
        errs.push(FieldError::invalid(
            "type",
            nt.unwrap_or(&json!("")),
            "field is immutable",
        ));
    }
    errs.extend(validate_immutable_data(new, old, &["data"]));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: Vec<FieldError>) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn config_map_keys_and_size() {
        let e = text(validate_config_map(
            &json!({"data": {"ok.key": "v", "bad/key": "v"}}),
        ));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters"));
        let big = "x".repeat(MAX_DATA_BYTES + 1);
        let e = text(validate_config_map(&json!({"data": {"a": big}})));
        assert_eq!(e, vec![": Too long: may not be more than 1048576 bytes"]);
        let e = text(validate_config_map(
            &json!({"data": {"a": "x"}, "binaryData": {"a": "eA=="}}),
        ));
        assert_eq!(
            e,
            vec!["data[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
    }

    #[test]
    fn secret_types() {
        assert!(validate_secret(&json!({"type": "Opaque", "data": {"a": "eA=="}})).is_empty());
        assert_eq!(
            text(validate_secret(
                &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
            )),
            vec!["data[tls.key]: Required value"]
        );
        assert_eq!(
            text(validate_secret(
                &json!({"type": "kubernetes.io/service-account-token"})
            )),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        assert_eq!(
            validate_secret(&json!({"data": {"a": "!!"}}))[0].field,
            "data[a]"
        );
    }

    #[test]
    fn immutable_objects() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        assert!(validate_immutable_data(&old, &old, &["data", "binaryData"]).is_empty());
        let new = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            text(validate_immutable_data(&new, &old, &["data", "binaryData"])),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let new = json!({"data": {"a": "1"}});
        assert_eq!(
            text(validate_immutable_data(&new, &old, &["data"])),
            vec!["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let e = text(validate_secret_update(
            &json!({"type": "Opaque"}),
            &json!({"type": "kubernetes.io/tls"}),
        ));
        assert_eq!(
            e,
            vec!["type: Invalid value: \"Opaque\": field is immutable"]
        );
    }
}
