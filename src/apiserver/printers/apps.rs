//! Workloads: deployments, replica sets, stateful sets, daemon sets, jobs,
//! cron jobs and controller revisions.

use serde_json::{json, Value};

use super::{
    age, arr_at, at, format_labels, format_selector, int_at, name, or_none, since, str_at,
    template_containers, Col, Printer, AGE, CONTAINERS, IMAGES, NAME,
};
use crate::apiserver::table;

const SELECTOR_DOC: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";

static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Ready", "string", "Number of the pod with ready state"),
        Col::new("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        Col::new("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        Col::new("Selector", "string", SELECTOR_DOC).wide(),
    ],
    cells: deployment,
};

fn deployment(o: &Value) -> Vec<Value> {
    let (c, i) = template_containers(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int_at(o, &["status", "readyReplicas"]),
            int_at(o, &["spec", "replicas"])
        )),
        json!(int_at(o, &["status", "updatedReplicas"])),
        json!(int_at(o, &["status", "availableReplicas"])),
        age(o),
        c,
        i,
        json!(format_selector(at(o, &["spec", "selector"]))),
    ]
}

static REPLICASET: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Desired", "integer", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#how-a-replicaset-works"),
        Col::new("Current", "integer", "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#how-a-replicaset-works"),
        Col::new("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
        AGE,
        CONTAINERS,
        IMAGES,
        Col::new("Selector", "string", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors").wide(),
    ],
    cells: replicaset,
};

fn replicaset(o: &Value) -> Vec<Value> {
    let (c, i) = template_containers(o);
    vec![
        name(o),
        json!(int_at(o, &["spec", "replicas"])),
        json!(int_at(o, &["status", "replicas"])),
        json!(int_at(o, &["status", "readyReplicas"])),
        age(o),
        c,
        i,
        json!(format_selector(at(o, &["spec", "selector"]))),
    ]
}

static STATEFULSET: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: statefulset,
};

fn statefulset(o: &Value) -> Vec<Value> {
    let (c, i) = template_containers(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int_at(o, &["status", "readyReplicas"]),
            int_at(o, &["spec", "replicas"])
        )),
        age(o),
        c,
        i,
    ]
}

static DAEMONSET: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
        Col::new("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
        Col::new("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
        Col::new("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        Col::new("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        Col::new("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col::new("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors").wide(),
    ],
    cells: daemonset,
};

fn daemonset(o: &Value) -> Vec<Value> {
    let (c, i) = template_containers(o);
    vec![
        name(o),
        json!(int_at(o, &["status", "desiredNumberScheduled"])),
        json!(int_at(o, &["status", "currentNumberScheduled"])),
        json!(int_at(o, &["status", "numberReady"])),
        json!(int_at(o, &["status", "updatedNumberScheduled"])),
        json!(int_at(o, &["status", "numberAvailable"])),
        json!(format_labels(at(
            o,
            &["spec", "template", "spec", "nodeSelector"]
        ))),
        age(o),
        c,
        i,
        json!(format_selector(at(o, &["spec", "selector"]))),
    ]
}

const JOB_SELECTOR_DOC: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

static JOB: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Status", "string", "Status of the job."),
        Col::new("Completions", "string", "The successful number of completions of the job over the desired number of completions."),
        Col::new("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Col::new("Selector", "string", JOB_SELECTOR_DOC).wide(),
    ],
    cells: job,
};

fn job_condition(o: &Value, ty: &str) -> bool {
    arr_at(o, &["status", "conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == ty && str_at(c, &["status"]) == "True")
}

fn parse(ts: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn job(o: &Value) -> Vec<Value> {
    let succeeded = int_at(o, &["status", "succeeded"]);
    let completions = match at(o, &["spec", "completions"]).as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let p = int_at(o, &["spec", "parallelism"]);
            if p > 1 {
                format!("{succeeded}/1 of {p}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match parse(str_at(o, &["status", "startTime"])) {
        None => String::new(),
        Some(start) => {
            let end =
                parse(str_at(o, &["status", "completionTime"])).unwrap_or_else(chrono::Utc::now);
            table::human_duration((end - start).num_seconds().max(0))
        }
    };
    let status = if job_condition(o, "Complete") {
        "Complete"
    } else if job_condition(o, "Failed") {
        "Failed"
    } else if !at(o, &["metadata", "deletionTimestamp"]).is_null() {
        "Terminating"
    } else if job_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if job_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if job_condition(o, "Suspended") {
        "Suspended"
    } else {
        "Running"
    };
    let (c, i) = template_containers(o);
    vec![
        name(o),
        json!(status),
        json!(completions),
        json!(duration),
        age(o),
        c,
        i,
        json!(format_selector(at(o, &["spec", "selector"]))),
    ]
}

static CRONJOB: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        Col::new("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
        Col::new("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
        Col::new("Active", "integer", "A list of pointers to currently running jobs."),
        Col::new("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        Col::new("Selector", "string", JOB_SELECTOR_DOC).wide(),
    ],
    cells: cronjob,
};

fn cronjob(o: &Value) -> Vec<Value> {
    let last = str_at(o, &["status", "lastScheduleTime"]);
    let tmpl = at(o, &["spec", "jobTemplate"]);
    let (c, i) = template_containers(tmpl);
    vec![
        name(o),
        json!(str_at(o, &["spec", "schedule"])),
        json!(or_none(str_at(o, &["spec", "timeZone"]))),
        json!(at(o, &["spec", "suspend"]).as_bool().unwrap_or(false)),
        json!(arr_at(o, &["status", "active"]).len()),
        json!(if last.is_empty() {
            "<none>".to_string()
        } else {
            since(last)
        }),
        age(o),
        c,
        i,
        json!(format_selector(at(tmpl, &["spec", "selector"]))),
    ]
}

static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        Col::new("Controller", "string", "Controller of the object"),
        Col::new(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ],
    cells: controller_revision,
};

fn controller_revision(o: &Value) -> Vec<Value> {
    let controller = arr_at(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| at(r, &["controller"]).as_bool().unwrap_or(false))
        .map(|r| {
            let api = str_at(r, &["apiVersion"]);
            let group = api.split_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = str_at(r, &["kind"]).to_lowercase();
            let kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{kind}/{}", str_at(r, &["name"]))
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(o),
        json!(controller),
        json!(int_at(o, &["revision"])),
        age(o),
    ]
}

pub fn lookup(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICASET,
        ("apps", "StatefulSet") => &STATEFULSET,
        ("apps", "DaemonSet") => &DAEMONSET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRONJOB,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ready_and_job_completions() {
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = deployment(&d);
        assert_eq!(c[1], "2/3");
        assert_eq!(c[5], "c");
        assert_eq!(c[6], "nginx");
        assert_eq!(c[7], "app=web");
        let j = json!({"metadata": {"name": "j"}, "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:00:07Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let c = job(&j);
        assert_eq!(c[1], "Complete");
        assert_eq!(c[2], "1/1");
        assert_eq!(c[3], "7s");
    }
}
