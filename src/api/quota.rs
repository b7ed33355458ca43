//! What an object costs against a ResourceQuota, as upstream's quota
//! evaluators count it: object counts (`count/<resource>` and the legacy
//! `pods`, `services`, `configmaps`, …), pod compute requests and limits,
//! service node ports and load balancers, claim storage. Shared by the
//! quota admission (charging a new object) and the quota controller
//! (recounting a namespace).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use crate::api::quantity::{parse_quantity_value, Format, Quantity};

/// Resource name → amount.
pub type Usage = BTreeMap<String, Quantity>;

/// The resources every container must state when a quota tracks them
/// (upstream's backward-compatible pod constraint).
const MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Object counts that predate `count/…` and keep their bare names.
const LEGACY_COUNTS: [&str; 4] = [
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// `count/pods`, `count/deployments.apps`.
pub fn count_key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The group and plural a `count/<resource>[.<group>]` name counts.
pub fn counted_by(key: &str) -> Option<(&str, &str)> {
    let res = key.strip_prefix("count/")?;
    Some(match res.split_once('.') {
        Some((plural, group)) => (group, plural),
        None => ("", res),
    })
}

fn is_pods(group: &str, plural: &str) -> bool {
    group.is_empty() && plural == "pods"
}

/// Whether quota resource `key` is one objects of this kind are charged
/// for (upstream's MatchingResources).
pub fn tracks(group: &str, plural: &str, key: &str) -> bool {
    if key == count_key(group, plural) {
        return true;
    }
    if !group.is_empty() {
        return false;
    }
    match plural {
        "pods" => {
            matches!(
                key,
                "pods" | "cpu" | "memory" | "ephemeral-storage" | "limits.cpu" | "limits.memory"
            ) || key.starts_with("hugepages-")
                || key.strip_prefix("requests.").is_some_and(|r| {
                    matches!(r, "cpu" | "memory" | "ephemeral-storage")
                        || r.starts_with("hugepages-")
                        || r.contains('/')
                })
                || key == "limits.ephemeral-storage"
        }
        "services" => matches!(
            key,
            "services" | "services.nodeports" | "services.loadbalancers"
        ),
        "persistentvolumeclaims" => {
            matches!(key, "persistentvolumeclaims" | "requests.storage")
                || key.contains(STORAGE_CLASS_SUFFIX)
        }
        other => LEGACY_COUNTS.contains(&other) && key == other,
    }
}

fn one() -> Quantity {
    Quantity::from_units(1, Format::DecimalSI)
}

fn count(n: usize) -> Quantity {
    Quantity::from_units(i64::try_from(n).unwrap_or(i64::MAX), Format::DecimalSI)
}

/// Whether a pod still counts: not finished, not past its deletion.
fn pod_counts(pod: &Value) -> bool {
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let gone = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= chrono::Utc::now());
    !finished && !gone
}

/// How the pod's containers spell `resource` (its sum keeps that format).
fn format_of(spec: &Value, list: &str, resource: &str) -> Format {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .filter_map(|c| c.pointer(&format!("/resources/{list}/{resource}")))
        .find_map(|q| parse_quantity_value(q).ok())
        .map_or(Format::DecimalSI, |q| q.format())
}

/// The quota names a container request or limit of `resource` counts as.
fn pod_resource_keys(list: &str, resource: &str) -> Vec<String> {
    let native = matches!(resource, "cpu" | "memory" | "ephemeral-storage");
    match list {
        "requests" if native => vec![resource.to_string(), format!("requests.{resource}")],
        "requests" if resource.starts_with("hugepages-") || resource.contains('/') => {
            vec![format!("requests.{resource}")]
        }
        "limits" if native => vec![format!("limits.{resource}")],
        _ => Vec::new(),
    }
}

fn pod_usage(pod: &Value) -> Usage {
    let mut out = Usage::new();
    if !pod_counts(pod) {
        return out;
    }
    out.insert("pods".into(), one());
    out.insert(count_key("", "pods"), one());
    let spec_value = pod.get("spec").cloned().unwrap_or(Value::Null);
    let Ok(spec) = serde_json::from_value::<PodSpec>(spec_value.clone()) else {
        return out;
    };
    let totals = [
        ("requests", crate::scheduler::resources::pod_requests(&spec)),
        ("limits", crate::scheduler::resources::pod_limits(&spec)),
    ];
    for (list, total) in totals {
        for (resource, nanos) in total {
            let q = Quantity::from_nanos(nanos, format_of(&spec_value, list, &resource));
            for key in pod_resource_keys(list, &resource) {
                out.insert(key, q);
            }
        }
    }
    out
}

fn service_usage(svc: &Value) -> Usage {
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let zero = Quantity::zero();
    let (node_ports, balancers) = match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => (count(ports.len()), zero),
        Some("LoadBalancer") => {
            let allocate = svc
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false);
            let n = if allocate {
                ports.len()
            } else {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            };
            (count(n), one())
        }
        _ => (zero, zero),
    };
    Usage::from([
        ("services".into(), one()),
        (count_key("", "services"), one()),
        ("services.nodeports".into(), node_ports),
        ("services.loadbalancers".into(), balancers),
    ])
}

fn claim_usage(pvc: &Value) -> Usage {
    let mut out = Usage::from([
        ("persistentvolumeclaims".into(), one()),
        (count_key("", "persistentvolumeclaims"), one()),
    ]);
    let storage = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(|q| parse_quantity_value(q).ok());
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    if let Some(q) = storage {
        out.insert("requests.storage".into(), q);
    }
    if let Some(class) = class {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            one(),
        );
        if let Some(q) = storage {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
    out
}

/// What one object of this kind costs.
pub fn usage(group: &str, plural: &str, obj: &Value) -> Usage {
    if !group.is_empty() {
        return Usage::from([(count_key(group, plural), one())]);
    }
    match plural {
        "pods" => pod_usage(obj),
        "services" => service_usage(obj),
        "persistentvolumeclaims" => claim_usage(obj),
        other => {
            let mut out = Usage::from([(count_key("", other), one())]);
            if LEGACY_COUNTS.contains(&other) {
                out.insert(other.to_string(), one());
            }
            out
        }
    }
}

/// Adds `more` into `into`, a new name taking the added amount's format.
pub fn add(into: &mut Usage, more: &Usage) {
    for (k, v) in more {
        let sum = into.get(k).map_or(*v, |prev| prev.add(v));
        into.insert(k.clone(), sum);
    }
}

/// `a=1,b=2Gi`, by name, as upstream prints usage in quota errors.
pub fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, v)| format!("{k}={}", v.canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a pod falls under one quota scope (or scopeSelector term).
fn pod_in_scope(pod: &Value, scope: &str, operator: &str, values: &[&str]) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let terminating = spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    let best_effort = crate::apiserver::admission::qos::pod_qos_class(pod) == "BestEffort";
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let holds = match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => {
            return match operator {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            }
        }
        _ => false,
    };
    match operator {
        "DoesNotExist" => !holds,
        _ => holds,
    }
}

/// Whether a quota covers an object: an unscoped quota covers everything
/// it tracks; scopes (all must hold) only ever select pods.
pub fn in_scope(quota: &Value, plural_is_pods: bool, obj: &Value) -> bool {
    let spec = quota.get("spec").unwrap_or(&Value::Null);
    let mut terms: Vec<(&str, &str, Vec<&str>)> = spec
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s, "Exists", Vec::new()))
        .collect();
    for e in spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push((
            e.get("scopeName").and_then(Value::as_str).unwrap_or(""),
            e.get("operator").and_then(Value::as_str).unwrap_or(""),
            values,
        ));
    }
    if terms.is_empty() {
        return true;
    }
    plural_is_pods && terms.iter().all(|(s, op, v)| pod_in_scope(obj, s, op, v))
}

/// Upstream's pod constraint: with cpu or memory under quota, every
/// container must state them. `Err` holds `must specify …`.
pub fn pod_constraints(
    group: &str,
    plural: &str,
    tracked: &[&str],
    pod: &Value,
) -> Result<(), String> {
    if !is_pods(group, plural) {
        return Ok(());
    }
    let required: BTreeSet<&str> = tracked
        .iter()
        .copied()
        .filter(|k| MUST_SPECIFY.contains(k))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for c in ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
    {
        let mut has = BTreeSet::new();
        for list in ["requests", "limits"] {
            for (resource, _) in c
                .pointer(&format!("/resources/{list}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                has.extend(pod_resource_keys(list, resource));
            }
        }
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        for r in &required {
            if !has.contains(*r) {
                missing.entry(*r).or_default().insert(name.to_string());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "i", "resources": resources},
            {"name": "b", "image": "i", "resources": resources}]},
            "status": {"phase": "Running"}})
    }

    #[test]
    fn pods_charge_counts_requests_and_limits() {
        let p = pod(json!({"requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}));
        let u = usage("", "pods", &p);
        assert_eq!(
            pretty(&u),
            "count/pods=1,cpu=500m,limits.cpu=1,limits.memory=256Mi,memory=128Mi,pods=1,requests.cpu=500m,requests.memory=128Mi"
        );
        let mut done = p.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn services_claims_and_counts() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &svc);
        assert_eq!(u["services.nodeports"].canonical(), "2");
        assert_eq!(u["services.loadbalancers"].canonical(), "0");
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &pvc);
        assert_eq!(u["requests.storage"].canonical(), "1Gi");
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"].canonical(),
            "1Gi"
        );
        assert_eq!(
            usage("", "configmaps", &json!({}))["configmaps"].canonical(),
            "1"
        );
        assert_eq!(
            pretty(&usage("apps", "deployments", &json!({}))),
            "count/deployments.apps=1"
        );
        assert_eq!(
            counted_by("count/deployments.apps"),
            Some(("apps", "deployments"))
        );
        assert_eq!(counted_by("count/pods"), Some(("", "pods")));
    }

    #[test]
    fn tracking_is_per_kind() {
        assert!(tracks("", "pods", "requests.cpu"));
        assert!(tracks("", "pods", "requests.example.com/gpu"));
        assert!(!tracks("", "pods", "requests.storage"));
        assert!(tracks("", "persistentvolumeclaims", "requests.storage"));
        assert!(tracks("", "secrets", "secrets"));
        assert!(!tracks("", "secrets", "configmaps"));
        assert!(tracks("apps", "deployments", "count/deployments.apps"));
    }

    #[test]
    fn containers_must_state_tracked_cpu_and_memory() {
        let p = pod(json!({"requests": {"cpu": "1"}}));
        assert_eq!(
            pod_constraints("", "pods", &["limits.cpu", "requests.cpu", "pods"], &p),
            Err("must specify limits.cpu for: a,b".to_string())
        );
        assert!(pod_constraints("", "pods", &["requests.cpu"], &p).is_ok());
    }

    #[test]
    fn scopes_select_pods_only() {
        let q = json!({"spec": {"scopes": ["BestEffort"]}});
        let best = pod(json!({}));
        let burstable = pod(json!({"requests": {"cpu": "1"}}));
        assert!(in_scope(&q, true, &best));
        assert!(!in_scope(&q, true, &burstable));
        assert!(!in_scope(&q, false, &json!({})));
        let by_class = json!({"spec": {"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let mut high = best.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(in_scope(&by_class, true, &high));
        assert!(!in_scope(&by_class, true, &best));
        assert!(in_scope(&json!({"spec": {}}), false, &json!({})));
    }
}
