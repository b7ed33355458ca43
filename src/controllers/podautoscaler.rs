//! HorizontalPodAutoscaler controller, without metrics yet: it reads the
//! target's scale, keeps it within minReplicas..maxReplicas, and reports
//! through status conditions and events, as upstream does when the
//! metrics APIs are missing, that it cannot compute a replica count.
//! Metrics-driven scaling comes with the metrics.k8s.io API.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, MetricSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::informers::Informers;
use super::retry::Error;

/// Upstream's --horizontal-pod-autoscaler-sync-period.
const SYNC_PERIOD: Duration = Duration::from_secs(15);

struct Ctx {
    client: Client,
    recorder: Recorder,
}

/// Why a metric cannot be read while no metrics API is served: the event
/// reason and upstream's message.
fn metric_failure(metric: &MetricSpec) -> (&'static str, String) {
    let missing = "the server could not find the requested resource";
    let resource = |name: &str, container: Option<&str>| {
        let what = match container {
            Some(c) => format!("{name} in container {c}"),
            None => name.to_string(),
        };
        format!(
            "failed to get {name} utilization: unable to get metrics for resource {what}: unable to fetch metrics from resource metrics API: {missing} (get pods.metrics.k8s.io)"
        )
    };
    match metric.type_.as_str() {
        "Resource" => {
            let name = metric.resource.as_ref().map_or("cpu", |r| r.name.as_str());
            ("FailedGetResourceMetric", resource(name, None))
        }
        "ContainerResource" => {
            let r = metric.container_resource.as_ref();
            let name = r.map_or("cpu", |r| r.name.as_str());
            let container = r.map_or("", |r| r.container.as_str());
            (
                "FailedGetContainerResourceMetric",
                resource(name, Some(container)),
            )
        }
        "Pods" => {
            let name = metric.pods.as_ref().map_or("", |p| p.metric.name.as_str());
            (
                "FailedGetPodsMetric",
                format!("unable to get metric {name}: unable to fetch metrics from custom metrics API: {missing} (get pods.custom.metrics.k8s.io)"),
            )
        }
        "Object" => {
            let name = metric
                .object
                .as_ref()
                .map_or("", |o| o.metric.name.as_str());
            (
                "FailedGetObjectMetric",
                format!("unable to get metric {name}: unable to fetch metrics from custom metrics API: {missing}"),
            )
        }
        other => {
            let name = metric
                .external
                .as_ref()
                .map_or("", |e| e.metric.name.as_str());
            (
                if other == "External" {
                    "FailedGetExternalMetric"
                } else {
                    "FailedGetResourceMetric"
                },
                format!("unable to get external metric {name}: unable to fetch metrics from external metrics API: {missing}"),
            )
        }
    }
}

/// The metrics an autoscaler follows; none means 80% CPU, as upstream.
fn metrics_of(hpa: &HorizontalPodAutoscaler) -> Vec<MetricSpec> {
    let given = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    if !given.is_empty() {
        return given;
    }
    let cpu = json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80}}});
    serde_json::from_value(cpu)
        .map(|m| vec![m])
        .unwrap_or_default()
}

fn condition(
    hpa: &HorizontalPodAutoscaler,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> HorizontalPodAutoscalerCondition {
    let status = if status { "True" } else { "False" };
    let since = hpa
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_ && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    HorizontalPodAutoscalerCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(since),
    }
}

/// The replica count the bounds ask for, and why, if the current count
/// is outside them (or the target is scaled to zero, which disables
/// autoscaling).
fn bounded(current: i32, min: i32, max: i32) -> Option<(i32, &'static str)> {
    if current == 0 && min != 0 {
        None
    } else if current > max {
        Some((max, "Current number of replicas above Spec.MaxReplicas"))
    } else if current < min {
        Some((min, "Current number of replicas below Spec.MinReplicas"))
    } else {
        None
    }
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if hpa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    let version = target.api_version.as_deref().unwrap_or("");
    let (group, version) = version.split_once('/').unwrap_or(("", version));
    let info = crate::api::registry::lookup_kind(group, version, &target.kind)
        .filter(|i| i.subresource("scale").is_some());
    let api = info.map(|info| {
        Api::<DynamicObject>::namespaced_with(
            ctx.client.clone(),
            &ns,
            &super::namespace::api_resource(&info),
        )
    });
    let scale = match &api {
        Some(api) => api.get_scale(&target.name).await.map_err(|e| e.to_string()),
        None => Err(format!(
            "no matches for kind \"{}\" in group \"{group}\"",
            target.kind
        )),
    };
    let mut status = hpa.status.clone().unwrap_or_default();
    let mut conditions = Vec::new();
    let scale = match scale {
        Ok(s) => s,
        Err(why) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {why}");
            ctx.recorder
                .record(&*hpa, EventType::Warning, "FailedGetScale", &why)
                .await;
            conditions.push(condition(
                &hpa,
                "AbleToScale",
                false,
                "FailedGetScale",
                message,
            ));
            status.conditions = Some(conditions);
            write_status(&ctx, &hpa, &ns, status).await?;
            return Ok(Action::requeue(SYNC_PERIOD));
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1);
    status.current_replicas = Some(scale.status.as_ref().map_or(0, |s| s.replicas));
    let mut able = condition(
        &hpa,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    );
    if current == 0 && min != 0 {
        status.desired_replicas = 0;
        conditions.push(able);
        conditions.push(condition(
            &hpa,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
    } else if let Some((desired, reason)) = bounded(current, min, spec.max_replicas) {
        if let Some(api) = &api {
            let patch = json!({"spec": {"replicas": desired}});
            api.patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        ctx.recorder
            .record(
                &*hpa,
                EventType::Normal,
                "SuccessfulRescale",
                &format!("New size: {desired}; reason: {reason}"),
            )
            .await;
        able = condition(
            &hpa,
            "AbleToScale",
            true,
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
        );
        conditions.push(able);
        status.desired_replicas = desired;
        status.last_scale_time = Some(Time(Timestamp::now()));
    } else {
        let metrics = metrics_of(&hpa);
        let failures: Vec<(&str, String)> = metrics.iter().map(metric_failure).collect();
        if let Some((reason, first)) = failures.first() {
            ctx.recorder
                .record(&*hpa, EventType::Warning, reason, first)
                .await;
            let kind = metrics
                .first()
                .map_or("resource", |m| match m.type_.as_str() {
                    "Pods" => "pods",
                    "Object" => "object",
                    "External" => "external",
                    _ => "resource",
                });
            let what = metrics
                .first()
                .and_then(|m| m.resource.as_ref().map(|r| r.name.clone()))
                .map_or_else(String::new, |n| format!("{n} "));
            ctx.recorder
                .record(
                    &*hpa,
                    EventType::Warning,
                    "FailedComputeMetricsReplicas",
                    &format!(
                        "invalid metrics ({n} invalid out of {n}), first error is: failed to get {what}{kind} metric value: {first}",
                        n = failures.len()
                    ),
                )
                .await;
            conditions.push(able);
            conditions.push(condition(
                &hpa,
                "ScalingActive",
                false,
                reason,
                format!("the HPA was unable to compute the replica count: {first}"),
            ));
        }
    }
    status.conditions = Some(conditions);
    status.observed_generation = hpa.metadata.generation;
    write_status(&ctx, &hpa, &ns, status).await?;
    Ok(Action::requeue(SYNC_PERIOD))
}

async fn write_status(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    ns: &str,
    status: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    if hpa.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .patch_status(
            &hpa.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(_hpa: Arc<HorizontalPodAutoscaler>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(%error, "autoscaler sync failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the autoscaler controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let autoscalers = informers.get::<HorizontalPodAutoscaler>();
    autoscalers.ready().await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client, "horizontal-pod-autoscaler"),
    });
    Controller::for_shared_stream(autoscalers.changes(), autoscalers.store())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_zero() {
        assert_eq!(
            bounded(1, 2, 5),
            Some((2, "Current number of replicas below Spec.MinReplicas"))
        );
        assert_eq!(
            bounded(7, 2, 5),
            Some((5, "Current number of replicas above Spec.MaxReplicas"))
        );
        assert_eq!(bounded(3, 2, 5), None);
        assert_eq!(bounded(0, 2, 5), None);
    }

    #[test]
    fn missing_cpu_metrics_read_like_upstream() {
        let hpa = HorizontalPodAutoscaler::default();
        let metrics = metrics_of(&hpa);
        let (reason, message) = metric_failure(&metrics[0]);
        assert_eq!(reason, "FailedGetResourceMetric");
        assert!(message.starts_with(
            "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API"
        ));
    }
}
