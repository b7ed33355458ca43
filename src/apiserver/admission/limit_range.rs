//! LimitRanger admission: containers of a new pod get the default requests
//! and limits of their namespace's LimitRanges, and pods, containers and
//! claims outside a range's min, max or maxLimitRequestRatio are refused
//! with upstream's messages.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api::quantity::{parse_quantity_value, Quantity};
use crate::api::quota::Usage;
use crate::apiserver::status::ApiResult;

use super::plugins::{list_in, Admitted};

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The LimitRange items (`spec.limits[]`) of the namespace.
async fn items(a: &Admitted<'_>) -> ApiResult<Vec<Value>> {
    let (_, ranges) = list_in(a.state, "", "v1", "limitranges", Some(a.namespace)).await?;
    Ok(ranges
        .into_iter()
        .flat_map(|(r, _)| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect())
}

fn list(v: Option<&Value>) -> Usage {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), parse_quantity_value(q).ok()?)))
        .collect()
}

/// Fills what a container leaves unset from `defaults`; the names set,
/// for the annotation.
fn fill(c: &mut Value, part: &str, defaults: &BTreeMap<String, Value>) -> Vec<String> {
    let mut set = Vec::new();
    if defaults.is_empty() {
        return set;
    }
    if !c["resources"].is_object() {
        c["resources"] = json!({});
    }
    if !c["resources"][part].is_object() {
        c["resources"][part] = json!({});
    }
    for (k, v) in defaults {
        if c["resources"][part].get(k).is_none() {
            c["resources"][part][k] = v.clone();
            set.push(k.clone());
        }
    }
    set
}

/// Puts the Container items' `default` and `defaultRequest` on containers
/// that lack them; true if the pod changed.
pub async fn default(a: &Admitted<'_>, pod: &mut Value) -> ApiResult<bool> {
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    for item in items(a).await? {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        for (part, into) in [("default", &mut limits), ("defaultRequest", &mut requests)] {
            for (k, v) in item
                .get(part)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                into.insert(k.clone(), v.clone());
            }
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return Ok(false);
    }
    let mut notes = Vec::new();
    for (key, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(list) = pod["spec"].get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in list {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let set_limits = fill(c, "limits", &limits);
            let set_requests = fill(c, "requests", &requests);
            for (set, what) in [(set_requests, "request"), (set_limits, "limit")] {
                if !set.is_empty() {
                    let mut set = set;
                    set.sort();
                    notes.push(format!("{} {what} for {label} {name}", set.join(", ")));
                }
            }
        }
    }
    if notes.is_empty() {
        return Ok(false);
    }
    let meta = &mut pod["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][ANNOTATION] =
        json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    Ok(true)
}

/// Which end of a range a bound is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Min,
    Max,
}

/// Upstream's min/max constraints: `required` (the request for a
/// minimum, the limit for a maximum; a claim's request either way) must
/// be stated, and neither it nor `other` may lie beyond the bound.
fn bound_constraint(
    kind: &str,
    res: &str,
    end: End,
    bound: &Quantity,
    required: (&str, Option<&Quantity>),
    other: (&str, Option<&Quantity>),
) -> Option<String> {
    let word = match end {
        End::Min => "minimum",
        End::Max => "maximum",
    };
    let b = bound.canonical();
    if required.1.is_none() {
        return Some(format!(
            "{word} {res} usage per {kind} is {b}.  No {} is specified",
            required.0
        ));
    }
    let beyond = |q: &&Quantity| match end {
        End::Min => *q < bound,
        End::Max => *q > bound,
    };
    [required, other].into_iter().find_map(|(name, q)| {
        q.filter(beyond).map(|q| {
            format!(
                "{word} {res} usage per {kind} is {b}, but {name} is {}",
                q.canonical()
            )
        })
    })
}

/// A container's or pod's requests and limits against one bound.
fn container_bound(
    kind: &str,
    res: &str,
    end: End,
    bound: &Quantity,
    req: &Usage,
    lim: &Usage,
) -> Option<String> {
    let request = ("request", req.get(res));
    let limit = ("limit", lim.get(res));
    match end {
        End::Min => bound_constraint(kind, res, end, bound, request, limit),
        End::Max => bound_constraint(kind, res, end, bound, limit, request),
    }
}

fn ratio_constraint(
    kind: &str,
    res: &str,
    ratio: &Quantity,
    req: &Usage,
    lim: &Usage,
) -> Option<String> {
    let r = ratio.canonical();
    let Some(request) = req.get(res).filter(|q| !q.is_zero()) else {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {r}, but no request is specified or request is 0"
        ));
    };
    let Some(limit) = lim.get(res).filter(|q| !q.is_zero()) else {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {r}, but no limit is specified or limit is 0"
        ));
    };
    let observed = limit.nanos() as f64 / request.nanos() as f64;
    (observed > ratio.as_f64()).then(|| {
        format!("{res} max limit to request ratio per {kind} is {r}, but provided ratio is {observed:.6}")
    })
}

/// What one item's bounds say about requests `req` and limits `lim`.
fn bounds(item: &Value, kind: &str, req: &Usage, lim: &Usage, errs: &mut Vec<String>) {
    for (part, end) in [("min", End::Min), ("max", End::Max)] {
        for (k, v) in list(item.get(part)) {
            errs.extend(container_bound(kind, &k, end, &v, req, lim));
        }
    }
    for (k, v) in list(item.get("maxLimitRequestRatio")) {
        errs.extend(ratio_constraint(kind, &k, &v, req, lim));
    }
}

fn pod_totals(pod: &Value) -> (Usage, Usage) {
    let mut totals = (Usage::new(), Usage::new());
    let Ok(spec) = serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(
        pod.get("spec").cloned().unwrap_or(Value::Null),
    ) else {
        return totals;
    };
    let to_usage = |r: crate::scheduler::resources::Resources| -> Usage {
        r.into_iter()
            .map(|(k, n)| {
                (
                    k,
                    Quantity::from_nanos(n, crate::api::quantity::Format::DecimalSI),
                )
            })
            .collect()
    };
    totals.0 = to_usage(crate::scheduler::resources::pod_requests(&spec));
    totals.1 = to_usage(crate::scheduler::resources::pod_limits(&spec));
    totals
}

/// Refuses a pod or claim outside its namespace's ranges.
pub async fn check(a: &Admitted<'_>, obj: &Value) -> ApiResult<()> {
    let is_claim = a.info.group.is_empty() && a.info.plural == "persistentvolumeclaims";
    let is_pod = a.info.group.is_empty() && a.info.plural == "pods";
    if !is_claim && !is_pod {
        return Ok(());
    }
    let mut errs = Vec::new();
    for item in items(a).await? {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "Container" if is_pod => {
                for c in ["containers", "initContainers"].iter().flat_map(|k| {
                    obj["spec"]
                        .get(*k)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                }) {
                    let req = list(c.pointer("/resources/requests"));
                    let lim = list(c.pointer("/resources/limits"));
                    bounds(&item, kind, &req, &lim, &mut errs);
                }
            }
            "Pod" if is_pod => {
                let (req, lim) = pod_totals(obj);
                bounds(&item, kind, &req, &lim, &mut errs);
            }
            "PersistentVolumeClaim" if is_claim => {
                // Claims state only requests; both ends bound them.
                let req = list(obj.pointer("/spec/resources/requests"));
                for (part, end) in [("min", End::Min), ("max", End::Max)] {
                    for (k, v) in list(item.get(part)) {
                        let request = ("request", req.get(&k));
                        errs.extend(bound_constraint(
                            kind,
                            &k,
                            end,
                            &v,
                            request,
                            ("limit", None),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    match errs.as_slice() {
        [] => Ok(()),
        [one] => Err(a.forbidden(one)),
        many => Err(a.forbidden(&format!("[{}]", many.join(", ")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(pairs: &[(&str, &str)]) -> Usage {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    crate::api::quantity::parse_quantity(v).expect("q"),
                )
            })
            .collect()
    }

    #[test]
    fn upstream_messages() {
        let q = |s| crate::api::quantity::parse_quantity(s).expect("q");
        assert_eq!(
            container_bound(
                "Container",
                "cpu",
                End::Max,
                &q("1"),
                &u(&[("cpu", "500m")]),
                &u(&[("cpu", "2")])
            ),
            Some("maximum cpu usage per Container is 1, but limit is 2".into())
        );
        assert_eq!(
            container_bound("Container", "memory", End::Max, &q("1Gi"), &u(&[]), &u(&[])),
            Some("maximum memory usage per Container is 1Gi.  No limit is specified".into())
        );
        assert_eq!(
            container_bound(
                "Container",
                "cpu",
                End::Min,
                &q("100m"),
                &u(&[("cpu", "50m")]),
                &u(&[])
            ),
            Some("minimum cpu usage per Container is 100m, but request is 50m".into())
        );
        let claim = ("request", None);
        assert_eq!(
            bound_constraint(
                "PersistentVolumeClaim",
                "storage",
                End::Max,
                &q("1Gi"),
                claim,
                ("limit", None)
            ),
            Some(
                "maximum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified"
                    .into()
            )
        );
        assert_eq!(
            ratio_constraint(
                "Container",
                "cpu",
                &q("2"),
                &u(&[("cpu", "100m")]),
                &u(&[("cpu", "500m")])
            ),
            Some(
                "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"
                    .into()
            )
        );
        assert_eq!(
            ratio_constraint(
                "Container",
                "cpu",
                &q("2"),
                &u(&[("cpu", "100m")]),
                &u(&[("cpu", "200m")])
            ),
            None
        );
    }

    #[test]
    fn fill_sets_only_missing_names() {
        let mut c = json!({"name": "c", "resources": {"limits": {"cpu": "2"}}});
        let defaults: BTreeMap<String, Value> = [
            ("cpu".to_string(), json!("1")),
            ("memory".to_string(), json!("1Gi")),
        ]
        .into();
        assert_eq!(
            fill(&mut c, "limits", &defaults),
            vec!["memory".to_string()]
        );
        assert_eq!(
            c["resources"]["limits"],
            json!({"cpu": "2", "memory": "1Gi"})
        );
    }
}
