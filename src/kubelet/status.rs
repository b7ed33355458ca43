//! A pod's status from what the runtime reports: phase, conditions and
//! container statuses with state/lastState/restartCount, computed the way
//! the kubelet does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use crate::runtime::shim::protocol::{ContainerState, Status};

/// Why a container is not running, when the runtime has no answer itself
/// (ErrImagePull, CreateContainerConfigError, CrashLoopBackOff, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

pub struct Observed<'a> {
    pub pod: &'a Pod,
    pub states: &'a [ContainerState],
    pub waiting: &'a HashMap<String, Waiting>,
    /// Readiness per container name (probes); running containers without a
    /// readiness probe are ready.
    pub ready: &'a HashMap<String, bool>,
    /// Whether the startup probe (if any) passed, per container name.
    pub started: &'a HashMap<String, bool>,
    /// Termination messages per container id.
    pub messages: &'a HashMap<String, String>,
    pub image_ids: &'a HashMap<String, String>,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: &'a str,
    pub sandbox_ready: bool,
    pub qos: &'a str,
}

/// The newest and the previous run of a container, by attempt.
pub fn runs<'a>(
    states: &'a [ContainerState],
    name: &str,
) -> (Option<&'a ContainerState>, Option<&'a ContainerState>) {
    let mut mine: Vec<&ContainerState> = states.iter().filter(|s| s.name == name).collect();
    mine.sort_by_key(|s| s.attempt);
    let latest = mine.pop();
    (latest, mine.pop())
}

fn terminated(s: &ContainerState, messages: &HashMap<String, String>) -> Value {
    let mut t = json!({
        "exitCode": s.exit_code.unwrap_or(0),
        "reason": s.reason.clone().unwrap_or_else(|| "Error".into()),
        "startedAt": s.started_at.as_deref().map(seconds),
        "finishedAt": s.finished_at.as_deref().map(seconds),
        "containerID": format!("kone://{}", s.id),
    });
    if let Some(m) = messages.get(&s.id).filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    }
    t
}

/// RFC 3339 with whole seconds, as metav1.Time serializes.
fn seconds(ts: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| ts.to_string())
}

fn container_status(o: &Observed, c: &Container, init_pending: bool) -> Value {
    let (latest, prev) = runs(o.states, &c.name);
    let waiting = o.waiting.get(&c.name);
    let running = latest.is_some_and(|l| l.status == Status::Running);
    let state = match (latest, waiting) {
        (Some(l), _) if l.status == Status::Running => {
            json!({"running": {"startedAt": l.started_at.as_deref().map(seconds)}})
        }
        (_, Some(w)) => json!({"waiting": {"reason": w.reason, "message": w.message}}),
        (Some(l), None) if l.status == Status::Exited => {
            json!({"terminated": terminated(l, o.messages)})
        }
        _ => {
            json!({"waiting": {"reason": if init_pending { "PodInitializing" } else { "ContainerCreating" }}})
        }
    };
    // The previous run; or, while waiting to restart, the run that ended.
    let last = match (latest, waiting) {
        (Some(l), Some(_)) if l.status == Status::Exited => Some(l),
        _ => prev.filter(|p| p.status == Status::Exited),
    };
    let mut s = json!({
        "name": c.name,
        "image": c.image,
        "imageID": o.image_ids.get(&c.name).cloned().unwrap_or_default(),
        "ready": running && o.ready.get(&c.name).copied().unwrap_or(true),
        "started": running && o.started.get(&c.name).copied().unwrap_or(true),
        "restartCount": latest.map_or(0, |l| l.attempt),
        "state": state,
        "lastState": last.map_or(json!({}), |l| json!({"terminated": terminated(l, o.messages)})),
    });
    if let Some(l) = latest {
        s["containerID"] = json!(format!("kone://{}", l.id));
    }
    s
}

fn succeeded(s: Option<&ContainerState>) -> bool {
    s.is_some_and(|s| s.status == Status::Exited && s.exit_code == Some(0))
}

/// Whether every init container has completed.
pub fn initialized(pod: &Pod, states: &[ContainerState]) -> bool {
    let inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    inits.iter().all(|c| {
        let (latest, _) = runs(states, &c.name);
        // A sidecar (restartPolicy Always) counts once it has started; its
        // later restarts do not undo the pod's initialization.
        if c.restart_policy.as_deref() == Some("Always") {
            latest.is_some_and(|l| l.started_at.is_some())
        } else {
            succeeded(latest)
        }
    })
}

pub fn phase(pod: &Pod, states: &[ContainerState], init_failed: bool) -> &'static str {
    if init_failed {
        return "Failed";
    }
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let containers = spec.map(|s| s.containers.clone()).unwrap_or_default();
    let latest: Vec<Option<&ContainerState>> =
        containers.iter().map(|c| runs(states, &c.name).0).collect();
    let all_exited = latest
        .iter()
        .all(|l| l.is_some_and(|l| l.status == Status::Exited));
    let any_started = latest
        .iter()
        .any(|l| l.is_some_and(|l| l.started_at.is_some()));
    let all_created = latest.iter().all(|l| l.is_some());
    match policy.as_str() {
        "Never" if all_exited => {
            if latest.iter().all(|l| succeeded(*l)) {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        "OnFailure" if all_exited && latest.iter().all(|l| succeeded(*l)) => "Succeeded",
        _ if all_created && any_started => "Running",
        _ => "Pending",
    }
}

/// Why the kubelet failed the pod as a whole, beyond its containers' exits.
#[derive(Clone, Debug, PartialEq)]
pub enum PodFailure {
    /// An init container failed under restartPolicy Never.
    Init,
    /// activeDeadlineSeconds passed.
    Deadline,
    /// Node-pressure eviction, with its message.
    Evicted(String),
}

pub fn compute(o: &Observed, failure: Option<&PodFailure>) -> Value {
    let init_failed = failure.is_some();
    let pod = o.pod;
    let spec = pod.spec.as_ref();
    let init_done = initialized(pod, o.states);
    let containers = spec.map(|s| s.containers.clone()).unwrap_or_default();
    let inits = spec
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| container_status(o, c, !init_done))
        .collect();
    let init_statuses: Vec<Value> = inits
        .iter()
        .map(|c| container_status(o, c, false))
        .collect();
    let phase = phase(pod, o.states, init_failed);
    let all_ready = statuses.iter().all(|s| s["ready"] == true);
    let old: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .map(|c| {
            c.into_iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cond = |kind: &str, ok: bool, reason: Option<&str>| -> Value {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or_else(|| now.clone());
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(r) = reason.filter(|_| !ok) {
            c["reason"] = json!(r);
        }
        c
    };
    let finished = phase == "Succeeded" || phase == "Failed";
    let not_ready = if finished {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", o.sandbox_ready, None),
        cond(
            "Initialized",
            init_done || (finished && !init_failed),
            Some(if finished {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
        ),
        cond("Ready", all_ready && !finished, Some(not_ready)),
        cond("ContainersReady", all_ready && !finished, Some(not_ready)),
    ];
    // Conditions others own (PodScheduled, readiness gates) stay as they are.
    for c in &old {
        let kind = c["type"].as_str().unwrap_or_default();
        if !conditions.iter().any(|n| n["type"] == kind) {
            conditions.push(c.clone());
        }
    }
    if !conditions.iter().any(|c| c["type"] == "PodScheduled") {
        conditions.push(cond("PodScheduled", true, None));
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": o.host_ip,
        "hostIPs": [{"ip": o.host_ip}],
        "startTime": o.start_time,
        "qosClass": o.qos,
        "containerStatuses": statuses,
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    if failure == Some(&PodFailure::Deadline) {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    if let Some(PodFailure::Evicted(message)) = failure {
        status["reason"] = json!("Evicted");
        status["message"] = json!(message);
        let target = json!({"type": "DisruptionTarget", "status": "True",
            "reason": "TerminationByKubelet", "message": message,
            "lastProbeTime": null, "lastTransitionTime": now});
        if let Some(conds) = status["conditions"].as_array_mut() {
            conds.retain(|c| c["type"] != "DisruptionTarget");
            conds.push(target);
        }
    }
    if let Some(ip) = o.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

/// The status parts that matter for "changed?" (timestamps of conditions
/// excluded, so a heartbeat does not rewrite an unchanged pod).
pub fn fingerprint(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
                m.remove("lastProbeTime");
            }
        }
    }
    s
}
