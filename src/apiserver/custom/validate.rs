//! Validation of a custom resource against its structural schema, with
//! upstream's (kube-openapi's) wording: `spec.replicas in body must be of
//! type integer: "string"`, `should be less than or equal to 10`, ...

use serde_json::Value;

use crate::api::crd::schema::Schema;
use crate::apiserver::admission::field_error::{go_value, FieldError};

/// Everything wrong with an object below its root metadata.
pub fn validate(obj: &Value, schema: &Schema) -> Vec<FieldError> {
    let mut out = Vec::new();
    node(obj, schema, "", true, &mut out);
    out
}

/// Everything wrong with a value against one schema node (CRD defaults).
pub fn validate_at(v: &Value, schema: &Schema, path: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    node(v, schema, path, false, &mut out);
    out
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match (want, type_name(v)) {
        ("number", "integer") => true,
        (w, actual) => w == actual,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn number(f: f64) -> String {
    f.to_string()
}

fn node(v: &Value, s: &Schema, path: &str, resource: bool, out: &mut Vec<FieldError>) {
    let invalid = |out: &mut Vec<FieldError>, detail: String| {
        out.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body {detail}"),
        ));
    };
    if v.is_null() {
        if !s.nullable {
            if let Some(ty) = &s.ty {
                out.push(FieldError::type_invalid(
                    path,
                    &Value::String("null".into()),
                    &format!("{path} in body must be of type {ty}: \"null\""),
                ));
            }
        }
        return;
    }
    if s.int_or_string && !matches!(type_name(v), "integer" | "string") {
        out.push(FieldError::type_invalid(
            path,
            &Value::String(type_name(v).into()),
            &format!(
                "{path} in body must be of type integer or string: \"{}\"",
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(ty) = &s.ty {
        if !type_ok(ty, v) {
            out.push(FieldError::type_invalid(
                path,
                &Value::String(type_name(v).into()),
                &format!("{path} in body must be of type {ty}: \"{}\"", type_name(v)),
            ));
            return;
        }
    }
    format(v, s, path, out);
    if !s.enumeration.is_empty() && !s.enumeration.contains(v) {
        let supported: Vec<String> = s
            .enumeration
            .iter()
            .map(|e| match e {
                Value::String(x) => crate::api::labels::go_quote(x),
                other => other.to_string(),
            })
            .collect();
        out.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(v),
                supported.join(", ")
            ),
        });
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = s.maximum {
                if s.exclusive_maximum && x >= max {
                    invalid(out, format!("should be less than {}", number(max)));
                } else if x > max {
                    invalid(
                        out,
                        format!("should be less than or equal to {}", number(max)),
                    );
                }
            }
            if let Some(min) = s.minimum {
                if s.exclusive_minimum && x <= min {
                    invalid(out, format!("should be greater than {}", number(min)));
                } else if x < min {
                    invalid(
                        out,
                        format!("should be greater than or equal to {}", number(min)),
                    );
                }
            }
            if let Some(m) = s.multiple_of.filter(|m| *m > 0.0) {
                if (x / m).fract() != 0.0 {
                    invalid(out, format!("should be a multiple of {}", number(m)));
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(max) = s.max_length {
                if len > max {
                    out.push(FieldError::too_long(path, max as usize));
                }
            }
            if let Some(min) = s.min_length {
                if len < min {
                    invalid(out, format!("should be at least {min} chars long"));
                }
            }
            if let Some(re) = &s.pattern {
                if !re.is_match(text) {
                    invalid(out, format!("should match '{}'", re.as_str()));
                }
            }
        }
        Value::Array(items) => array(v, items, s, path, out),
        Value::Object(map) => {
            for r in &s.required {
                if !map.contains_key(r) {
                    out.push(FieldError::required(join(path, r), ""));
                }
            }
            let n = map.len() as u64;
            if let Some(max) = s.max_properties {
                if n > max {
                    out.push(FieldError::too_many(path, map.len(), max));
                }
            }
            if let Some(min) = s.min_properties {
                if n < min {
                    invalid(out, format!("should have at least {min} properties"));
                }
            }
            if s.embedded {
                for k in ["apiVersion", "kind"] {
                    if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                        out.push(FieldError::required(join(path, k), "must not be empty"));
                    }
                }
            }
            for (k, child) in map {
                if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(cs) = s.child(k) {
                    node(child, cs, &join(path, k), cs.embedded, out);
                }
            }
        }
        _ => {}
    }
    combinators(v, s, path, out);
}

fn array(v: &Value, items: &[Value], s: &Schema, path: &str, out: &mut Vec<FieldError>) {
    let n = items.len() as u64;
    if let Some(max) = s.max_items {
        if n > max {
            out.push(FieldError::too_many(path, items.len(), max));
        }
    }
    if let Some(min) = s.min_items {
        if n < min {
            out.push(FieldError::invalid(
                path,
                v,
                &format!("{path} in body should have at least {min} items"),
            ));
        }
    }
    let set = s.list_type.as_deref() == Some("set");
    if s.unique_items || set {
        for (i, e) in items.iter().enumerate() {
            if items[..i].contains(e) {
                out.push(FieldError::duplicate(format!("{path}[{i}]"), e));
            }
        }
    }
    if s.list_type.as_deref() == Some("map") && !s.list_map_keys.is_empty() {
        let key = |e: &Value| -> Vec<Value> {
            s.list_map_keys
                .iter()
                .map(|k| e.get(k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        for (i, e) in items.iter().enumerate() {
            let k = key(e);
            if items[..i].iter().any(|p| key(p) == k) {
                let shown = if k.len() == 1 {
                    k[0].clone()
                } else {
                    Value::Array(k)
                };
                out.push(FieldError::duplicate(format!("{path}[{i}]"), &shown));
            }
        }
    }
    if let Some(item) = &s.items {
        for (i, e) in items.iter().enumerate() {
            node(e, item, &format!("{path}[{i}]"), item.embedded, out);
        }
    }
}

/// Formats kube-openapi checks that are cheap to check here.
fn format(v: &Value, s: &Schema, path: &str, out: &mut Vec<FieldError>) {
    let Some(f) = s.format.as_deref() else { return };
    let ok = match (f, v) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()),
        ("int64", Value::Number(n)) => n.as_i64().is_some(),
        ("date-time", Value::String(t)) => chrono::DateTime::parse_from_rfc3339(t).is_ok(),
        ("date", Value::String(t)) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok(),
        _ => true,
    };
    if !ok {
        let shown = match v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        out.push(FieldError::type_invalid(
            path,
            v,
            &format!("{path} in body must be of type {f}: \"{shown}\""),
        ));
    }
}

fn passes(v: &Value, s: &Schema, path: &str) -> bool {
    let mut errs = Vec::new();
    node(v, s, path, false, &mut errs);
    errs.is_empty()
}

/// allOf, anyOf, oneOf and not.
fn combinators(v: &Value, s: &Schema, path: &str, out: &mut Vec<FieldError>) {
    for sub in &s.all_of {
        node(v, sub, path, false, out);
    }
    let mut fail = |what: &str| {
        out.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body {what}"),
        ))
    };
    if !s.any_of.is_empty() && !s.any_of.iter().any(|sub| passes(v, sub, path)) {
        fail("must validate at least one schema (anyOf)");
    }
    if !s.one_of.is_empty() && s.one_of.iter().filter(|sub| passes(v, sub, path)).count() != 1 {
        fail("must validate one and only one schema (oneOf)");
    }
    if let Some(not) = &s.not {
        if passes(v, not, path) {
            fail("must not validate the schema (not)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                "image": {"type": "string", "minLength": 2, "maxLength": 10},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "format": "int32"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": true},
                "opt": {"type": "string", "nullable": true},
            }},
        }}))
        .expect("schema")
    }

    fn messages(obj: Value) -> Vec<String> {
        validate(&obj, &schema())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn valid_objects_pass() {
        let ok = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"cronSpec": "* * * * */5", "image": "nginx", "replicas": 3, "mode": "a",
                "tags": ["x"], "port": "http", "opt": null}});
        assert!(messages(ok).is_empty());
    }

    #[test]
    fn errors_read_like_upstream() {
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * *", "replicas": "three"}})),
            [
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        let all = messages(json!({"spec": {"replicas": 20, "image": "x", "mode": "c",
            "tags": ["a", "b", "c"], "port": true, "cronSpec": "bad"}}));
        assert_eq!(
            all,
            [
                "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
                r#"spec.image: Invalid value: "x": spec.image in body should be at least 2 chars long"#,
                r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#,
                "spec.tags: Too many: 3: must have at most 2 items",
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer or string: "boolean""#,
                r#"spec.cronSpec: Invalid value: "bad": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            ]
        );
        assert_eq!(
            messages(json!({"spec": {}})),
            ["spec.cronSpec: Required value"]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * *", "replicas": 3000000000_i64}})),
            [
                "spec.replicas: Invalid value: 3000000000: spec.replicas in body must be of type int32: \"3000000000\"",
                "spec.replicas: Invalid value: 3000000000: spec.replicas in body should be less than or equal to 10",
            ]
        );
    }
}
