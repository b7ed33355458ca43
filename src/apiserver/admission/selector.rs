//! Controller selectors: the `metav1.LabelSelector` object's own syntax,
//! and the rule that a controller's selector must select the pods its
//! template makes (or it would create pods forever).

use serde_json::Value;

use crate::api::labels::LabelSelector;

use super::field_error::{go_label_selector, go_string_map, FieldError};
use super::metadata::validate_labels;
use super::syntax::{is_qualified_name, is_valid_label_value};

/// Syntax of a `metav1.LabelSelector` at `path`.
pub fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(sel.get("matchLabels"), &format!("{path}.matchLabels"));
    for (i, e) in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid_str(
                format!("{p}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid_str(format!("{p}.key"), key, &m));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for m in is_valid_label_value(v) {
                errs.push(FieldError::invalid_str(format!("{p}.values[{j}]"), v, &m));
            }
        }
    }
    errs
}

/// A workload's required, non-empty selector at `spec.selector`; returns
/// it parsed when usable.
pub fn required_selector(
    spec: &Value,
    kind_word: &str,
    errs: &mut Vec<FieldError>,
) -> Option<LabelSelector> {
    let sel = spec.get("selector").filter(|v| !v.is_null());
    let Some(sel) = sel else {
        errs.push(FieldError::required("spec.selector", ""));
        return None;
    };
    let syntax = validate_label_selector(sel, "spec.selector");
    let had_errors = !syntax.is_empty();
    errs.extend(syntax);
    let empty = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
        && sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
    if empty {
        errs.push(FieldError::invalid_rendered(
            "spec.selector",
            go_label_selector(Some(sel)),
            &format!("empty selector is invalid for {kind_word}"),
        ));
    }
    if had_errors {
        return None;
    }
    match LabelSelector::from_label_selector_json(sel) {
        Ok(s) => Some(s),
        Err(_) => {
            errs.push(FieldError::invalid_rendered(
                "spec.selector",
                go_label_selector(Some(sel)),
                "invalid label selector",
            ));
            None
        }
    }
}

/// The template at `template_path` must carry labels the selector matches.
pub fn template_matches(
    selector: &LabelSelector,
    template: Option<&Value>,
    template_path: &str,
) -> Option<FieldError> {
    if selector.is_empty() {
        return None;
    }
    let labels = template
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"));
    if selector.matches(labels.and_then(Value::as_object)) {
        return None;
    }
    Some(FieldError::invalid_rendered(
        format!("{template_path}.metadata.labels"),
        go_string_map(labels),
        "`selector` does not match template `labels`",
    ))
}

/// The selector may not change (apps/v1 made it immutable).
pub fn selector_unchanged(new: &Value, old: &Value) -> Option<FieldError> {
    let (n, o) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if super::json::semantic_eq(n, o) {
        return None;
    }
    Some(FieldError::invalid_rendered(
        "spec.selector",
        go_label_selector(n),
        "field is immutable",
    ))
}

/// Used when a selector is a plain map (ReplicationController).
pub fn map_selector(spec: &Value, errs: &mut Vec<FieldError>) -> Option<LabelSelector> {
    match spec.get("selector").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            errs.extend(validate_labels(spec.get("selector"), "spec.selector"));
            Some(LabelSelector::from_map(m))
        }
        _ => {
            errs.push(FieldError::required("spec.selector", ""));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_syntax() {
        let e = validate_label_selector(
            &json!({"matchExpressions": [
                {"key": "a", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Gt", "values": ["1"]}
            ]}),
            "spec.selector",
        );
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Gt\": not a valid selector operator",
            ]
        );
    }

    #[test]
    fn template_must_match() {
        let sel =
            LabelSelector::from_label_selector_json(&json!({"matchLabels": {"app": "y"}})).unwrap();
        let t = json!({"metadata": {"labels": {"app": "x"}}});
        assert_eq!(
            template_matches(&sel, Some(&t), "spec.template").unwrap().to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn immutable_selector_message() {
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "nginx"}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "nginx2"}}}});
        assert_eq!(
            selector_unchanged(&new, &old).unwrap().to_string(),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"nginx2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
        assert!(selector_unchanged(&old, &old).is_none());
    }
}
