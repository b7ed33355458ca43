//! What may change in a running pod's spec. A pod is a promise made to a
//! node, so upstream allows only a few fields to move: container images,
//! a shorter deadline, extra tolerations, and removing scheduling gates.

use serde_json::{json, Map, Value};

use super::field_error::FieldError;
use super::json::{s, semantic, semantic_eq};
use super::syntax::inclusive_range_error;

const MAX_INT32: i64 = i32::MAX as i64;

const UPDATABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let empty = Value::Object(Map::new());
    let ns = new.get("spec").unwrap_or(&empty);
    let os = old.get("spec").unwrap_or(&empty);
    let mut errs = Vec::new();

    for list in ["containers", "initContainers"] {
        for (i, c) in ns
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if s(c, "image").is_empty() {
                errs.push(FieldError::required(format!("spec.{list}[{i}].image"), ""));
            }
        }
    }

    match (
        ns.get("activeDeadlineSeconds").and_then(Value::as_i64),
        os.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (Some(n), _) if !(0..=MAX_INT32).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &json!(n),
                &inclusive_range_error(0, MAX_INT32),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &json!(n),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    if let Some(e) = only_added_tolerations(ns.get("tolerations"), os.get("tolerations")) {
        errs.push(e);
    }
    if let Some(e) = only_removed_gates(ns.get("schedulingGates"), os.get("schedulingGates")) {
        errs.push(e);
    }

    // Overwrite what may change with the old values; anything still
    // different is a forbidden change.
    let mut munged = ns.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let (Some(nc), Some(oc)) = (
                m.get_mut(list).and_then(Value::as_array_mut),
                os.get(list).and_then(Value::as_array),
            ) {
                for (n, o) in nc.iter_mut().zip(oc) {
                    if let (Some(n), Some(img)) = (n.as_object_mut(), o.get("image")) {
                        n.insert("image".into(), img.clone());
                    }
                }
            }
        }
        for key in [
            "activeDeadlineSeconds",
            "tolerations",
            "schedulingGates",
            "ephemeralContainers",
        ] {
            match os.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = os
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = m
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            m.insert("terminationGracePeriodSeconds".into(), json!(old_grace));
        }
    }
    if !semantic_eq(Some(&munged), Some(os)) {
        errs.push(FieldError::forbidden(
            "spec",
            &format!("{UPDATABLE}\n{}", spec_diff(os, &munged)),
        ));
    }
    errs
}

/// Existing tolerations must stay, though their tolerationSeconds may
/// change.
fn only_added_tolerations(new: Option<&Value>, old: Option<&Value>) -> Option<FieldError> {
    let strip = |t: &Value| {
        let mut t = semantic(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new: Vec<Value> = new
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(strip)
        .collect();
    for o in old.and_then(Value::as_array).into_iter().flatten() {
        if !new.contains(&strip(o)) {
            return Some(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    None
}

/// Scheduling gates can only be removed, never added.
fn only_removed_gates(new: Option<&Value>, old: Option<&Value>) -> Option<FieldError> {
    let old: Vec<&Value> = old
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    for (i, g) in new
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !old.contains(&g) {
            return Some(FieldError::forbidden(
                format!("spec.schedulingGates[{i}]"),
                "only deletion is allowed, but found new scheduling gate",
            ));
        }
    }
    None
}

/// A short `-old`/`+new` listing of the changed top-level spec fields, in
/// place of the Go struct diff upstream appends.
fn spec_diff(old: &Value, new: &Value) -> String {
    let (o, n) = (semantic(old), semantic(new));
    let empty = Map::new();
    let om = o.as_object().unwrap_or(&empty);
    let nm = n.as_object().unwrap_or(&empty);
    let mut out = String::from("  core.PodSpec{\n");
    let mut keys: Vec<&String> = om
        .keys()
        .chain(nm.keys().filter(|k| !om.contains_key(*k)))
        .collect();
    keys.dedup();
    for k in keys {
        let (a, b) = (om.get(k), nm.get(k));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("- \t{k}: {a},\n"));
            }
            if let Some(b) = b {
                out.push_str(&format!("+ \t{k}: {b},\n"));
            }
        }
    }
    out.push_str("  }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "image": "nginx:1"}],
            "restartPolicy": "Always",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "activeDeadlineSeconds": 100
        }})
    }

    #[test]
    fn image_and_deadline_and_tolerations_may_change() {
        let old = pod();
        let mut new = pod();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["activeDeadlineSeconds"] = json!(50);
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(10);
        new["spec"]["tolerations"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "x", "operator": "Exists"}));
        assert!(validate_pod_update(&new, &old).is_empty());
    }

    #[test]
    fn other_changes_are_forbidden() {
        let old = pod();
        let mut new = pod();
        new["spec"]["restartPolicy"] = json!("Never");
        let e = validate_pod_update(&new, &old);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reason, "FieldValueForbidden");
        assert!(e[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(
            e[0].message.contains("- \trestartPolicy: \"Always\""),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn deadline_rules() {
        let old = pod();
        let mut new = pod();
        new["spec"]["activeDeadlineSeconds"] = json!(200);
        assert_eq!(
            validate_pod_update(&new, &old)[0].to_string(),
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
        );
        new["spec"]
            .as_object_mut()
            .unwrap()
            .remove("activeDeadlineSeconds");
        assert_eq!(
            validate_pod_update(&new, &old)[0].to_string(),
            "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"
        );
    }

    #[test]
    fn tolerations_cannot_be_removed() {
        let old = pod();
        let mut new = pod();
        new["spec"]["tolerations"] = json!([]);
        assert_eq!(
            validate_pod_update(&new, &old)[0].to_string(),
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
        );
    }

    #[test]
    fn empty_image_refused() {
        let old = pod();
        let mut new = pod();
        new["spec"]["containers"][0]["image"] = json!("");
        assert_eq!(
            validate_pod_update(&new, &old)[0].to_string(),
            "spec.containers[0].image: Required value"
        );
    }
}
