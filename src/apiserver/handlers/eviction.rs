//! pods/eviction: a delete that respects the pod's PodDisruptionBudget
//! (upstream's EvictionREST). An eviction the budget allows spends one
//! disruption and notes the pod in the budget's `disruptedPods`, so the
//! disruption controller does not count it as healthy while it goes.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

use super::delete::{delete_one, options_from, DeleteOptions};
use super::read::fetch_with_rev;
use super::update::{write, Fields, Mode};
use super::{json, Request};
use crate::apiserver::admission::plugins::list_in;
use crate::apiserver::body;
use crate::apiserver::object;
use crate::apiserver::path::ResourceTarget;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::controllers::{disruption, pods};

/// Disruptions noted but not yet confirmed by the controller beyond which
/// evictions stop (upstream's MaxDisruptedPodSize).
const MAX_DISRUPTED_PODS: usize = 2000;

/// Attempts at spending a disruption when the budget changes under us.
const ATTEMPTS: usize = 5;

/// What the eviction of a pod its budget protects would violate.
fn too_many_requests(cause: String, retry_after: u64) -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    e.details = Some(details);
    e
}

fn pdb_forbidden(name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "poddisruptionbudgets.policy \"{name}\" is forbidden: {why}"
    ));
    e.details = Some(json!({"name": name, "group": "policy", "kind": "poddisruptionbudgets"}));
    e
}

/// Pods whose eviction no budget guards: finished, not yet running, or
/// already going.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending") | None
    ) || object::is_deleting(pod)
}

/// The budget `pdb` (read at `rev`) with one disruption spent on `pod`,
/// or why it allows none.
fn spend(pdb: &Value, typed: &PodDisruptionBudget, pod: &str) -> ApiResult<Value> {
    let name = typed.metadata.name.as_deref().unwrap_or("");
    let status = typed.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < typed.metadata.generation.unwrap_or(0) {
        return Err(too_many_requests(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    if status.disruptions_allowed < 0 {
        return Err(pdb_forbidden(name, "pdb disruptions allowed is negative"));
    }
    if status.disrupted_pods.as_ref().map_or(0, |m| m.len()) > MAX_DISRUPTED_PODS {
        return Err(pdb_forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
            0,
        ));
    }
    let mut new = pdb.clone();
    let left = status.disruptions_allowed - 1;
    new["status"]["disruptionsAllowed"] = json!(left);
    let now = object::now_rfc3339();
    match new["status"]["disruptedPods"].as_object_mut() {
        Some(m) => {
            m.insert(pod.to_string(), json!(now));
        }
        None => new["status"]["disruptedPods"] = json!({ pod: now }),
    }
    if left == 0 {
        if let Some(conds) = new["status"]["conditions"].as_array_mut() {
            for c in conds
                .iter_mut()
                .filter(|c| c["type"] == "DisruptionAllowed")
            {
                if c["status"] != "False" {
                    c["lastTransitionTime"] = json!(now);
                }
                c["status"] = json!("False");
                c["reason"] = json!("InsufficientPods");
            }
        }
    }
    Ok(new)
}

/// The budgets in the pod's namespace that select it, with their revisions.
async fn budgets_of(req: &Request<'_>, pod: &Pod) -> ApiResult<Vec<(Value, i64)>> {
    let ns = req.target.namespace.as_deref();
    let (_, all) = list_in(req.state, "policy", "v1", "poddisruptionbudgets", ns).await?;
    let mut out = Vec::new();
    for (obj, rev) in all {
        let typed: PodDisruptionBudget = serde_json::from_value(obj.clone())
            .map_err(|e| ApiError::internal(format!("decoding budget: {e}")))?;
        if disruption::selects(&typed, pod) {
            out.push((obj, rev));
        }
    }
    Ok(out)
}

/// The request that writes a budget's status.
fn budget_status_request<'a>(req: &Request<'a>, name: &str) -> ApiResult<Request<'a>> {
    let info = crate::apiserver::stored::info("policy", "v1", "poddisruptionbudgets")?;
    Ok(Request {
        state: req.state,
        user: req.user,
        target: ResourceTarget {
            info,
            namespace: req.target.namespace.clone(),
            name: Some(name.to_string()),
            subresource: Some("status".into()),
            rest: Vec::new(),
            legacy_watch: false,
        },
        query: req.query.clone(),
        headers: req.headers.clone(),
    })
}

/// Deletion options that hold only if the pod is still as it was read, as
/// upstream does when it decided from that state.
fn pinned(mut opts: DeleteOptions, pod: &Value) -> DeleteOptions {
    if opts.precondition_rv.is_none() {
        opts.precondition_rv = object::meta_str(pod, "resourceVersion").map(String::from);
    }
    opts
}

pub async fn create(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let bytes = body::read(body).await?;
    let eviction = body::decode(&req.headers, &bytes)?;
    if object::name(&eviction).unwrap_or("") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = match eviction.get("deleteOptions").filter(|o| !o.is_null()) {
        Some(o) => options_from(o)?,
        None => DeleteOptions::default(),
    };
    let (pod, _) = fetch_with_rev(&req, &name).await?;
    let opts = evictable(&req, &name, &pod, opts).await?;
    delete_one(&req, &name, &opts).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The options to delete the pod with once its budget allows it, having
/// spent the disruption; or why it may not go.
async fn evictable(
    req: &Request<'_>,
    name: &str,
    pod: &Value,
    opts: DeleteOptions,
) -> ApiResult<DeleteOptions> {
    if can_ignore_budget(pod) {
        return Ok(pinned(opts, pod));
    }
    let typed_pod: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| ApiError::internal(format!("decoding pod {name}: {e}")))?;
    let mut attempt = 0;
    loop {
        let budgets = budgets_of(req, &typed_pod).await?;
        let (pdb, rev) = match budgets.as_slice() {
            [] => return Ok(opts),
            [one] => one.clone(),
            _ => {
                return Err(ApiError::new(
                    500,
                    "",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ))
            }
        };
        let typed: PodDisruptionBudget = serde_json::from_value(pdb.clone())
            .map_err(|e| ApiError::internal(format!("decoding budget: {e}")))?;
        if !pods::is_ready(&typed_pod) {
            let spec = typed.spec.clone().unwrap_or_default();
            let status = typed.status.clone().unwrap_or_default();
            let always = spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow");
            // An unhealthy pod goes without spending a disruption when the
            // budget is met anyway (IfHealthyBudget) or always.
            if always
                || (status.current_healthy >= status.desired_healthy && status.desired_healthy > 0)
            {
                return Ok(pinned(opts, pod));
            }
        }
        let new = spend(&pdb, &typed, name)?;
        let pdb_name = typed.metadata.name.clone().unwrap_or_default();
        let status_req = budget_status_request(req, &pdb_name)?;
        match write(&status_req, &pdb, new, rev, Mode::Status, Fields::Update).await {
            Ok(_) => return Ok(opts),
            Err(e) if e.reason == "Conflict" && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(allowed: i32, generation: i64, observed: i64) -> Value {
        json!({
            "metadata": {"name": "b", "namespace": "ns", "generation": generation},
            "spec": {"minAvailable": 1},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2,
                "expectedPods": 2, "observedGeneration": observed,
                "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                    "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
        })
    }

    fn typed(v: &Value) -> PodDisruptionBudget {
        serde_json::from_value(v.clone()).expect("budget")
    }

    #[test]
    fn no_disruption_left_is_429_with_the_budget_cause() {
        let b = budget(0, 1, 1);
        let e = spend(&b, &typed(&b), "p").expect_err("blocked");
        assert_eq!(e.code, 429);
        assert_eq!(
            e.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        let details = e.details.expect("details");
        assert_eq!(details["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            details["causes"][0]["message"],
            "The disruption budget b needs 2 healthy pods and has 2 currently"
        );
        assert!(details.get("retryAfterSeconds").is_none());
    }

    #[test]
    fn unprocessed_budget_asks_to_retry() {
        let b = budget(1, 2, 1);
        let e = spend(&b, &typed(&b), "p").expect_err("stale");
        assert_eq!(e.code, 429);
        assert_eq!(e.details.expect("details")["retryAfterSeconds"], 10);
    }

    #[test]
    fn spending_the_last_disruption_notes_the_pod_and_flips_the_condition() {
        let b = budget(1, 1, 1);
        let new = spend(&b, &typed(&b), "p").expect("allowed");
        assert_eq!(new["status"]["disruptionsAllowed"], 0);
        assert!(new["status"]["disruptedPods"]["p"].is_string());
        assert_eq!(new["status"]["conditions"][0]["status"], "False");
        assert_eq!(new["status"]["conditions"][0]["reason"], "InsufficientPods");
    }

    #[test]
    fn pending_finished_and_deleting_pods_ignore_budgets() {
        assert!(can_ignore_budget(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_budget(
            &json!({"status": {"phase": "Succeeded"}})
        ));
        assert!(can_ignore_budget(
            &json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
    }
}
