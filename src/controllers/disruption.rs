//! PodDisruptionBudget controller: how many of the pods a budget selects
//! are healthy, how many must be, and so how many evictions it allows
//! (upstream's disruption controller). The eviction subresource spends
//! the allowance and notes the pod in `disruptedPods`; this loop forgets
//! those entries once the pod is gone or the eviction timed out.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::deployment::scaled;
use super::events::{EventType, Recorder};
use super::informers::Informers;
use super::pods;
use super::retry::{self, Error};

/// How long an eviction may take before the pod counts again (upstream's
/// DeletionTimeout).
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// Budgets that depend on their controllers' scale are looked at again this
/// often, since a scale change touches no pod.
const RESYNC: Duration = Duration::from_secs(30);

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    sets: Store<ReplicaSet>,
    recorder: Recorder,
}

/// Whether a budget selects a pod. policy/v1: an empty selector selects
/// every pod of the namespace; a missing one selects none.
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.namespace() != pod.namespace() {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
    empty || pods::selects(sel, pod.metadata.labels.as_ref())
}

/// The replicas the pods' controllers want, each top-level controller
/// counted once (a ReplicaSet of a Deployment counts as the Deployment),
/// read through the `scale` subresource as upstream does.
async fn expected_scale(ctx: &Ctx, ns: &str, selected: &[Arc<Pod>]) -> Result<i32, String> {
    let mut seen = HashSet::new();
    let mut total = 0i32;
    for pod in selected {
        let Some(mut owner) = pods::controller_of(&pod.metadata).cloned() else {
            return Err(format!(
                "found no controller ref for pod {:?}",
                pod.name_any()
            ));
        };
        if owner.kind == "ReplicaSet" && owner.api_version == "apps/v1" {
            let rs = ctx.sets.get(&ObjectRef::new(&owner.name).within(ns));
            if let Some(top) = rs
                .as_ref()
                .and_then(|rs| pods::controller_of(&rs.metadata))
                .filter(|c| c.kind == "Deployment" && c.api_version == "apps/v1")
            {
                owner = top.clone();
            }
        }
        if !seen.insert(owner.uid.clone()) {
            continue;
        }
        let no_controller = || format!("found no controllers for pod {:?}", pod.name_any());
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", owner.api_version.as_str()),
        };
        let info = crate::api::registry::lookup_kind(group, version, &owner.kind)
            .filter(|i| i.subresource("scale").is_some())
            .ok_or_else(no_controller)?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            ns,
            &super::namespace::api_resource(&info),
        );
        let scale = match api.get_scale(&owner.name).await {
            Ok(s) => s,
            Err(kube::Error::Api(e)) if e.code == 404 => return Err(no_controller()),
            Err(e) => return Err(e.to_string()),
        };
        if scale
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| u != owner.uid)
        {
            return Err(no_controller());
        }
        total += scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    }
    Ok(total)
}

/// expectedPods and desiredHealthy, as upstream derives them from
/// minAvailable or maxUnavailable (percentages round up).
async fn counts(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    ns: &str,
    selected: &[Arc<Pod>],
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let live = i32::try_from(selected.len()).unwrap_or(i32::MAX);
    if let Some(max) = &spec.max_unavailable {
        let expected = expected_scale(ctx, ns, selected).await?;
        let unavailable = scaled(Some(max), expected, true, 0);
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((live, *n)),
        Some(pct @ IntOrString::String(_)) => {
            let expected = expected_scale(ctx, ns, selected).await?;
            Ok((expected, scaled(Some(pct), expected, true, 0)))
        }
        None => Ok((live, 0)),
    }
}

/// The disrupted pods still pending deletion, and when the earliest of
/// them times out.
fn live_disruptions(
    pdb: &PodDisruptionBudget,
    selected: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let old = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let mut kept = BTreeMap::new();
    let mut next: Option<Duration> = None;
    let timeout = i64::try_from(DELETION_TIMEOUT.as_secs()).unwrap_or(i64::MAX);
    for pod in selected {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.name_any();
        let Some(at) = old.get(&name) else { continue };
        let left = timeout - (now.as_second() - at.0.as_second());
        if left > 0 {
            kept.insert(name, at.clone());
            let left = Duration::from_secs(left.unsigned_abs());
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    (kept, next)
}

fn condition(allowed: bool, failure: Option<&str>, old: Option<&Condition>, gen: i64) -> Condition {
    let (status, reason, message) = match failure {
        Some(why) => ("False", "SyncFailed", why.to_string()),
        None if allowed => ("True", "SufficientPods", String::new()),
        None => ("False", "InsufficientPods", String::new()),
    };
    let since = old
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(gen),
        last_transition_time: since,
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let selected: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| selects(&pdb, p))
        .collect();
    let (disrupted, expiry) = live_disruptions(&pdb, &selected, now);
    let healthy = selected
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !disrupted.contains_key(&p.name_any())
                && pods::is_ready(p)
        })
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let gen = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.clone().unwrap_or_default();
    let old_cond = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let spec = pdb.spec.clone().unwrap_or_default();
    let scale_based = spec.max_unavailable.is_some()
        || matches!(spec.min_available, Some(IntOrString::String(_)));
    let status = match counts(&ctx, &pdb, &ns, &selected).await {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            PodDisruptionBudgetStatus {
                current_healthy: healthy,
                desired_healthy: desired,
                expected_pods: expected,
                disruptions_allowed: allowed,
                disrupted_pods: Some(disrupted.clone()),
                observed_generation: Some(gen),
                conditions: Some(vec![condition(allowed > 0, None, old_cond, gen)]),
            }
        }
        Err(why) => {
            let reason = if why.starts_with("found no controller ref") {
                "NoControllerRef"
            } else {
                "NoControllers"
            };
            ctx.recorder
                .record(&*pdb, EventType::Warning, reason, &why)
                .await;
            // Fail safe: no evictions while the budget cannot be computed.
            PodDisruptionBudgetStatus {
                current_healthy: healthy,
                disruptions_allowed: 0,
                disrupted_pods: Some(disrupted.clone()),
                observed_generation: Some(gen),
                conditions: Some(vec![condition(false, Some(&why), old_cond, gen)]),
                ..old.clone()
            }
        }
    };
    let same = |a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus| {
        let strip = |s: &PodDisruptionBudgetStatus| {
            let mut s = s.clone();
            if s.disrupted_pods.as_ref().is_some_and(BTreeMap::is_empty) {
                s.disrupted_pods = None;
            }
            s
        };
        strip(a) == strip(b)
    };
    if !same(&status, &old) {
        let mut patch = json!({
            "metadata": {"resourceVersion": pdb.resource_version()},
            "status": status,
        });
        // A merge patch keeps map keys it does not name: drop the
        // finished disruptions explicitly.
        for name in old.disrupted_pods.iter().flatten().map(|(k, _)| k) {
            if !disrupted.contains_key(name) {
                patch["status"]["disruptedPods"][name] = serde_json::Value::Null;
            }
        }
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &pdb.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Changed under us (an eviction): the change brings us back.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut next = if scale_based { Some(RESYNC) } else { None };
    if let Some(e) = expiry {
        next = Some(next.map_or(e, |n| n.min(e)));
    }
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

/// Runs the disruption controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let budgets = informers.get::<PodDisruptionBudget>();
    let pod_informer = informers.get::<Pod>();
    let set_informer = informers.get::<ReplicaSet>();
    budgets.ready().await;
    pod_informer.ready().await;
    set_informer.ready().await;
    let store = budgets.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        sets: set_informer.store(),
        recorder: Recorder::new(client, "controllermanager"),
    });
    let lookup = store.clone();
    Controller::for_shared_stream(budgets.changes(), store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            lookup
                .state()
                .iter()
                .filter(|b| selects(b, &pod))
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn pod(name: &str, labels: &[(&str, &str)]) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus::default()),
        })
    }

    fn pdb(selector: Option<LabelSelector>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("b".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn empty_selector_selects_the_namespace_and_none_selects_nothing() {
        let p = pod("a", &[("app", "x")]);
        assert!(selects(&pdb(Some(LabelSelector::default())), &p));
        assert!(!selects(&pdb(None), &p));
        let by_label = LabelSelector {
            match_labels: Some([("app".to_string(), "y".to_string())].into()),
            ..LabelSelector::default()
        };
        assert!(!selects(&pdb(Some(by_label)), &p));
    }

    #[test]
    fn expired_and_deleted_disruptions_are_forgotten() {
        let now = Timestamp::now();
        let mut b = pdb(Some(LabelSelector::default()));
        let at = |secs: i64| Time(now - k8s_openapi::jiff::SignedDuration::from_secs(secs));
        b.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(
                [
                    ("fresh".to_string(), at(10)),
                    ("old".to_string(), at(500)),
                    ("gone".to_string(), at(10)),
                ]
                .into(),
            ),
            ..PodDisruptionBudgetStatus::default()
        });
        let selected = vec![pod("fresh", &[]), pod("old", &[])];
        let (kept, next) = live_disruptions(&b, &selected, now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["fresh"]);
        assert_eq!(next, Some(Duration::from_secs(110)));
    }
}
