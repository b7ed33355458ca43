//! Pods: NAME READY STATUS RESTARTS AGE, wide IP NODE NOMINATED NODE
//! READINESS GATES, computed like upstream's printPod.

use serde_json::{json, Value};

use super::{age, arr_at, at, int_at, name, since, str_at, Col, Printer, AGE, NAME};

static POD: Printer = Printer {
    columns: &[
        NAME,
        Col::new(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Col::new(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        Col::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Col::new("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
        Col::new("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename").wide(),
        Col::new("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.").wide(),
        Col::new("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates").wide(),
    ],
    cells: pod_cells,
};

pub fn lookup(group: &str, kind: &str) -> Option<&'static Printer> {
    match (group, kind) {
        ("", "Pod") => Some(&POD),
        _ => None,
    }
}

/// Ready, status and restarts of a pod, as upstream's printPod computes them.
pub struct PodSummary {
    pub ready: String,
    pub status: String,
    pub restarts: String,
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == ty && str_at(c, &["status"]) == "True")
}

fn later(cur: &mut Option<chrono::DateTime<chrono::FixedOffset>>, cs: &Value) {
    let finished = str_at(cs, &["lastState", "terminated", "finishedAt"]);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(finished) {
        if cur.is_none_or(|c| c < t) {
            *cur = Some(t);
        }
    }
}

fn exit_reason(prefix: &str, term: &Value) -> String {
    let signal = int_at(term, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(term, &["exitCode"]))
    }
}

pub fn summarize(pod: &Value) -> PodSummary {
    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let sidecar = |n: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, &["name"]) == n && str_at(c, &["restartPolicy"]) == "Always")
    };
    let mut total = arr_at(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = if phase.is_empty() { "Pending" } else { phase }.to_string();
    let status_reason = str_at(pod, &["status", "reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if arr_at(pod, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    }) {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        later(&mut last_restart, cs);
        let is_sidecar = sidecar(str_at(cs, &["name"]));
        let started = at(cs, &["started"]).as_bool().unwrap_or(false);
        if is_sidecar {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, cs);
            if started && at(cs, &["ready"]).as_bool().unwrap_or(false) {
                ready += 1;
            }
        }
        let term = at(cs, &["state", "terminated"]);
        let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
        if !term.is_null() && int_at(term, &["exitCode"]) == 0 {
            continue;
        }
        if is_sidecar && started {
            continue;
        }
        if !term.is_null() {
            let r = str_at(term, &["reason"]);
            reason = if r.is_empty() {
                exit_reason("Init:", term)
            } else {
                format!("Init:{r}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            later(&mut last_restart, cs);
            let waiting = str_at(cs, &["state", "waiting", "reason"]);
            let term = at(cs, &["state", "terminated"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !term.is_null() {
                let r = str_at(term, &["reason"]);
                reason = if r.is_empty() {
                    exit_reason("", term)
                } else {
                    r.to_string()
                };
            } else if at(cs, &["ready"]).as_bool().unwrap_or(false)
                && !at(cs, &["state", "running"]).is_null()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    let deleting = !at(pod, &["metadata", "deletionTimestamp"]).is_null();
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(&t.to_rfc3339())),
        _ => restarts.to_string(),
    };
    PodSummary {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

pub fn pod_cells(pod: &Value) -> Vec<Value> {
    let s = summarize(pod);
    let none = |v: &str| super::or_none(v);
    let ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map(|p| str_at(p, &["ip"]))
        .unwrap_or_else(|| str_at(pod, &["status", "podIP"]));
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| condition_true(pod, str_at(g, &["conditionType"])))
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(s.ready),
        json!(s.status),
        json!(s.restarts),
        age(pod),
        json!(none(ip)),
        json!(none(str_at(pod, &["spec", "nodeName"]))),
        json!(none(str_at(pod, &["status", "nominatedNodeName"]))),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": status,
        })
    }

    #[test]
    fn pending_pod_without_status() {
        let s = summarize(&pod(json!({})));
        assert_eq!(
            (s.ready.as_str(), s.status.as_str(), s.restarts.as_str()),
            ("0/2", "Pending", "0")
        );
        let cells = pod_cells(&pod(json!({})));
        assert_eq!(cells[5], "<none>");
        assert_eq!(cells[6], "<none>");
        assert_eq!(cells[8], "<none>");
    }

    #[test]
    fn running_and_crashlooping() {
        let ago = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
        let s = summarize(&pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago}}},
            ],
        })));
        assert_eq!(s.ready, "1/2");
        assert_eq!(s.status, "CrashLoopBackOff");
        assert_eq!(s.restarts, "5 (5m ago)");
    }

    #[test]
    fn completed_error_and_exit_codes() {
        let done = |term: Value| {
            summarize(&pod(json!({
                "phase": "Failed",
                "containerStatuses": [{"name": "a", "state": {"terminated": term}}],
            })))
            .status
        };
        assert_eq!(
            done(json!({"exitCode": 0, "reason": "Completed"})),
            "Completed"
        );
        assert_eq!(done(json!({"exitCode": 1, "reason": "Error"})), "Error");
        assert_eq!(done(json!({"exitCode": 3})), "ExitCode:3");
        assert_eq!(done(json!({"exitCode": 0, "signal": 9})), "Signal:9");
    }

    #[test]
    fn init_containers_and_terminating() {
        let mut p = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "i", "state": {"running": {}}}],
        }));
        p["spec"]["initContainers"] = json!([{"name": "i"}]);
        assert_eq!(summarize(&p).status, "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(summarize(&p).status, "Init:ImagePullBackOff");
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 2, "reason": "Error"}});
        assert_eq!(summarize(&p).status, "Init:Error");
        p["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(summarize(&p).status, "Terminating");
    }

    #[test]
    fn ip_node_and_gates() {
        let mut p = pod(json!({
            "phase": "Running",
            "podIPs": [{"ip": "10.42.0.5"}],
            "conditions": [{"type": "g", "status": "True"}],
        }));
        p["spec"]["nodeName"] = json!("n1");
        p["spec"]["readinessGates"] = json!([{"conditionType": "g"}, {"conditionType": "h"}]);
        let c = pod_cells(&p);
        assert_eq!(c[2], "Running");
        assert_eq!(c[5], "10.42.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c[8], "1/2");
    }
}
