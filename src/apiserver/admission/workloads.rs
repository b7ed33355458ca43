//! Long-running workload controllers: Deployment, ReplicaSet, StatefulSet,
//! DaemonSet and ReplicationController. They share the shape "selector +
//! pod template that restarts forever"; each adds its own strategy rules.

use serde_json::{json, Map, Value};

use super::field_error::FieldError;
use super::json::{arr_at, s, semantic_eq};
use super::pod::validate_pod_template;
use super::selector::{map_selector, required_selector, selector_unchanged, template_matches};
use super::syntax::is_valid_percent;

fn nonnegative(spec: &Value, key: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = spec.get(key).and_then(Value::as_i64) {
        if v < 0 {
            errs.push(FieldError::invalid(
                format!("spec.{key}"),
                &json!(v),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Template rules common to the controllers whose pods must always
/// restart.
fn restart_always_template(spec: &Value, kind: &str, errs: &mut Vec<FieldError>) {
    let template = spec.get("template").filter(|t| !t.is_null());
    errs.extend(validate_pod_template(template, "spec.template"));
    let Some(t) = template else { return };
    let rp = t
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(rp),
            &["Always"],
        ));
    }
    if let Some(ads) = t
        .pointer("/spec/activeDeadlineSeconds")
        .filter(|v| !v.is_null())
    {
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            ads,
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

fn selector_and_template(spec: &Value, kind_word: &str, kind: &str, errs: &mut Vec<FieldError>) {
    if let Some(sel) = required_selector(spec, kind_word, errs) {
        if let Some(e) = template_matches(&sel, spec.get("template"), "spec.template") {
            errs.push(e);
        }
    }
    restart_always_template(spec, kind, errs);
}

fn value_of_int_or_percent(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.strip_suffix('%').and_then(|d| d.parse().ok()),
        _ => None,
    }
}

fn int_or_percent(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::String(s)) => {
            for m in is_valid_percent(s) {
                errs.push(FieldError::invalid_str(path, s, &m));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|x| x < 0) => {
            errs.push(FieldError::invalid(
                path,
                &Value::Number(n.clone()),
                "must be greater than or equal to 0",
            ));
        }
        _ => {}
    }
}

fn not_more_than_100_percent(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(Value::String(s)) = v {
        if value_of_int_or_percent(&json!(s)).is_some_and(|p| p > 100) {
            errs.push(FieldError::invalid_str(
                path,
                s,
                "must not be greater than 100%",
            ));
        }
    }
}

fn rolling_update(ru: &Value, path: &str, both_zero_msg: &str, errs: &mut Vec<FieldError>) {
    let unavailable = ru.get("maxUnavailable");
    let surge = ru.get("maxSurge");
    int_or_percent(unavailable, &format!("{path}.maxUnavailable"), errs);
    int_or_percent(surge, &format!("{path}.maxSurge"), errs);
    let zero = |v: Option<&Value>| v.and_then(value_of_int_or_percent).unwrap_or(0) == 0;
    if zero(unavailable) && zero(surge) {
        errs.push(FieldError::invalid(
            format!("{path}.maxUnavailable"),
            unavailable.unwrap_or(&json!(0)),
            both_zero_msg,
        ));
    }
    not_more_than_100_percent(unavailable, &format!("{path}.maxUnavailable"), errs);
}

pub fn validate_deployment(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    nonnegative(spec, "replicas", &mut errs);
    selector_and_template(spec, "deployment", "ReplicaSet", &mut errs);
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    match s(strategy, "type") {
        "Recreate" => {
            if strategy.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
            Some(ru) => rolling_update(
                ru,
                "spec.strategy.rollingUpdate",
                "may not be 0 when `maxSurge` is 0",
                &mut errs,
            ),
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
        },
        _ => errs.push(FieldError::not_supported(
            "spec.strategy",
            strategy,
            &["Recreate", "RollingUpdate"],
        )),
    }
    nonnegative(spec, "minReadySeconds", &mut errs);
    nonnegative(spec, "revisionHistoryLimit", &mut errs);
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pds <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &json!(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

pub fn validate_replica_set(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    nonnegative(spec, "replicas", &mut errs);
    nonnegative(spec, "minReadySeconds", &mut errs);
    // Upstream's message names deployments here too.
    selector_and_template(spec, "deployment", "ReplicaSet", &mut errs);
    errs
}

pub fn validate_daemon_set(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    selector_and_template(spec, "daemonset", "DaemonSet", &mut errs);
    nonnegative(spec, "minReadySeconds", &mut errs);
    nonnegative(spec, "revisionHistoryLimit", &mut errs);
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match s(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                rolling_update(
                    ru,
                    "spec.updateStrategy.rollingUpdate",
                    "cannot be 0 when maxSurge is 0",
                    &mut errs,
                );
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            &json!(other),
            &["OnDelete", "RollingUpdate"],
        )),
    }
    errs
}

pub fn validate_stateful_set(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    match s(spec, "podManagementPolicy") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.podManagementPolicy",
            &json!(other),
            &["OrderedReady", "Parallel"],
        )),
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match s(strategy, "type") {
        "RollingUpdate" => {
            if let Some(p) = strategy
                .pointer("/rollingUpdate/partition")
                .and_then(Value::as_i64)
            {
                if p < 0 {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate.partition",
                        &json!(p),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        "OnDelete" => {
            if strategy.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    strategy.get("rollingUpdate").unwrap_or(&Value::Null),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            &json!(other),
            &["OnDelete", "RollingUpdate"],
        )),
    }
    nonnegative(spec, "replicas", &mut errs);
    nonnegative(spec, "minReadySeconds", &mut errs);
    selector_and_template(
        &with_claim_volumes(spec),
        "statefulset",
        "StatefulSet",
        &mut errs,
    );
    errs
}

/// The spec with a volume per claim template, as the controller gives
/// each pod: containers mount claims by template name.
fn with_claim_volumes(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let claims: Vec<String> = arr_at(&spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if let Some(pod) = spec
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    {
        let volumes = pod.entry("volumes").or_insert(Value::Null);
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        if let Some(list) = volumes.as_array_mut() {
            for name in claims {
                if !list.iter().any(|v| s(v, "name") == name) {
                    list.push(json!({"name": name, "persistentVolumeClaim": {"claimName": name}}));
                }
            }
        }
    }
    spec
}

pub fn validate_replication_controller(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    nonnegative(spec, "replicas", &mut errs);
    nonnegative(spec, "minReadySeconds", &mut errs);
    if let Some(sel) = map_selector(spec, &mut errs) {
        if let Some(e) = template_matches(&sel, spec.get("template"), "spec.template") {
            errs.push(e);
        }
    }
    restart_always_template(spec, "ReplicationController", &mut errs);
    errs
}

/// Deployment, ReplicaSet and DaemonSet: the selector is fixed at create.
pub fn validate_selector_immutable(new: &Value, old: &Value) -> Vec<FieldError> {
    selector_unchanged(new, old).into_iter().collect()
}

const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// A StatefulSet's identity (service, claims, selector, pod management)
/// is fixed; only the listed fields may change.
pub fn validate_stateful_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let strip = |v: &Value| {
        let mut m: Map<String, Value> = v
            .get("spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for k in STATEFULSET_MUTABLE {
            m.remove(*k);
        }
        Value::Object(m)
    };
    if semantic_eq(Some(&strip(new)), Some(&strip(old))) {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::defaults::apply_defaults;

    fn deployment() -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
            }
        });
        apply_defaults("apps", "Deployment", &mut d);
        d
    }

    fn text(e: Vec<FieldError>) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaulted_deployment_is_valid() {
        assert_eq!(
            text(validate_deployment(&deployment())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
        assert_eq!(
            text(validate_deployment(&d)),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn selector_required_and_non_empty() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            text(validate_deployment(&d)),
            vec!["spec.selector: Required value"]
        );
        d["spec"]["selector"] = json!({});
        assert_eq!(
            text(validate_deployment(&d)),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn replicas_and_restart_policy() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            text(validate_deployment(&d)),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn strategy_rules() {
        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        assert_eq!(
            text(validate_deployment(&d)),
            vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        assert_eq!(
            text(validate_deployment(&d)),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
        );
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}});
        let e = text(validate_deployment(&d));
        assert!(e[0].starts_with("spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string"), "{e:?}");
        assert_eq!(e[1], "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%");
    }

    #[test]
    fn selector_immutable_on_update() {
        let old = deployment();
        let mut new = deployment();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        assert_eq!(
            text(validate_selector_immutable(&new, &old)),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
        );
    }

    #[test]
    fn statefulset_update_and_rc() {
        let mut old = json!({"metadata": {"name": "db"}, "spec": {
            "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "pg"}]}}
        }});
        apply_defaults("apps", "StatefulSet", &mut old);
        assert_eq!(text(validate_stateful_set(&old)), Vec::<String>::new());
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(validate_stateful_set_update(&new, &old).is_empty());
        new["spec"]["serviceName"] = json!("other");
        assert_eq!(validate_stateful_set_update(&new, &old)[0].field, "spec");
        // Containers mount claim templates by name; other names are unknown.
        let mut mounts = old.clone();
        mounts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        mounts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
        assert_eq!(text(validate_stateful_set(&mounts)), Vec::<String>::new());
        mounts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "other"}}]);
        assert_eq!(
            validate_stateful_set(&mounts)[0].field,
            "spec.template.spec.containers[0].volumeMounts[0].name"
        );

        let mut rc = json!({"metadata": {"name": "r"}, "spec": {
            "template": {"metadata": {"labels": {"app": "r"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        }});
        apply_defaults("", "ReplicationController", &mut rc);
        assert_eq!(
            text(validate_replication_controller(&rc)),
            Vec::<String>::new()
        );
        rc["spec"]["selector"] = json!({"app": "other"});
        assert_eq!(
            validate_replication_controller(&rc)[0].field,
            "spec.template.metadata.labels"
        );
    }
}
