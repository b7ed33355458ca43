//! One validation failure, worded like upstream's `field.Error` so that
//! kubectl shows the same `spec.x: Invalid value: ...` lines and the Status
//! causes carry the same reason, message and field.

use std::fmt;

use serde_json::Value;

use crate::api::labels::{go_quote, go_string_slice};

#[derive(Debug, Clone)]
pub struct FieldError {
    /// Path like `spec.containers[0].name`.
    pub field: String,
    /// Upstream's CauseType: `FieldValueRequired`, `FieldValueInvalid`,
    /// `FieldValueNotSupported`, `FieldValueDuplicate`,
    /// `FieldValueForbidden`, `FieldValueTooLong`, `FieldValueNotFound`.
    pub reason: &'static str,
    /// The error body without the field: `Invalid value: "x": why`. It is
    /// what a StatusCause's message holds.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            message: with_detail("Required value".into(), detail),
        }
    }

    /// `value` is printed as Go's `%v`/`%#v` would print the typed value.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
        FieldError::invalid_rendered(field, go_value(value), detail)
    }

    pub fn invalid_str(field: impl Into<String>, value: &str, detail: &str) -> FieldError {
        FieldError::invalid_rendered(field, go_quote(value), detail)
    }

    /// For a bad value already rendered the Go way.
    pub fn invalid_rendered(
        field: impl Into<String>,
        rendered: String,
        detail: &str,
    ) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: with_detail(format!("Invalid value: {rendered}"), detail),
        }
    }

    pub fn not_supported(
        field: impl Into<String>,
        value: &Value,
        supported: &[&str],
    ) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = if list.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", list.join(", "))
        };
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: with_detail(format!("Unsupported value: {}", go_value(value)), &detail),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {}", go_value(value)),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: with_detail("Forbidden".into(), detail),
        }
    }

    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> FieldError {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        FieldError {
            field: field.into(),
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max_bytes} {unit}"),
        }
    }

    /// A value of the wrong JSON type (schema validation of custom resources).
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueTypeInvalid",
            message: with_detail(format!("Invalid value: {}", go_value(value)), detail),
        }
    }

    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueTooMany",
            message: format!("Too many: {actual}: must have at most {max} items"),
        }
    }

    pub fn not_found(field: impl Into<String>, value: &Value) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueNotFound",
            message: format!("Not found: {}", go_value(value)),
        }
    }
}

/// How Go prints a bad value: strings quoted, numbers and booleans plain,
/// string lists and string maps in `%#v` form (`map[string]string{"a":"b"}`
/// with sorted keys), anything else as compact JSON.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let items: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            go_string_slice(&items)
        }
        Value::Object(m) if m.values().all(Value::is_string) => go_string_map(Some(v)),
        other => other.to_string(),
    }
}

/// Go's `%#v` of a `map[string]string` (`(nil)` when absent).
pub fn go_string_map(v: Option<&Value>) -> String {
    let Some(m) = v.and_then(Value::as_object) else {
        return "map[string]string(nil)".into();
    };
    let mut pairs: Vec<(&String, &str)> = m
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// Go's `%#v` of a `metav1.LabelSelector`, which upstream prints in the
/// well-known "field is immutable" message for workload selectors.
pub fn go_label_selector(v: Option<&Value>) -> String {
    let Some(sel) = v.filter(|v| !v.is_null()) else {
        return "null".into();
    };
    let labels = match sel.get("matchLabels").filter(|v| !v.is_null()) {
        Some(m) => go_string_map(Some(m)),
        None => "map[string]string(nil)".into(),
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        Some(vals) => {
                            let s: Vec<String> = vals
                                .iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect();
                            go_string_slice(&s)
                        }
                        None => "[]string(nil)".into(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(e.get("key").and_then(Value::as_str).unwrap_or("")),
                        go_quote(e.get("operator").and_then(Value::as_str).unwrap_or(""))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_matches_upstream() {
        assert_eq!(
            FieldError::required("spec.containers[0].name", "").to_string(),
            "spec.containers[0].name: Required value"
        );
        assert_eq!(
            FieldError::invalid(
                "spec.template.metadata.labels",
                &json!({"app": "x", "a": "b"}),
                "`selector` does not match template `labels`"
            )
            .to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"b\", \"app\":\"x\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            FieldError::not_supported("spec.restartPolicy", &json!("Sometimes"), &["Always", "OnFailure", "Never"])
                .to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            FieldError::too_long("metadata.annotations", 262144).message,
            "Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::invalid("x", &json!(70000), "bad").message,
            "Invalid value: 70000: bad"
        );
    }

    #[test]
    fn label_selector_like_go() {
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"app": "nginx"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"nginx\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
