//! Defaulting of built-in kinds: the values upstream's v1 defaulters (and
//! the registry strategies that run at create) fill in, so objects read
//! back look as they would from a stock kube-apiserver. Pod specs are in
//! `pod_defaults`.

use serde_json::{json, Value};

use super::json::{default, each_obj_mut, ensure_obj, obj_mut, Obj};
use super::pod_defaults::{
    canonical_quantities, default_pod, default_pod_template, default_template_meta,
};
use super::service::externally_accessible;

/// Fill in defaults for an object of `kind` in API `group` ("" for core).
/// Idempotent, so it also runs on updates.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => default_pod(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => super::crd::default_crd(obj),
        ("", "PodTemplate") => {
            if let Some(t) = obj.as_object_mut().and_then(|o| ensure_obj(o, "template")) {
                default_pod_template(t);
            }
        }
        ("", "ReplicationController") => default_replication_controller(obj),
        ("apps", "Deployment") => with_spec(obj, default_deployment),
        ("apps", "ReplicaSet") => with_spec(obj, |spec| {
            default(spec, "replicas", json!(1));
            template(spec);
        }),
        ("apps", "StatefulSet") => with_spec(obj, default_stateful_set),
        ("apps", "DaemonSet") => with_spec(obj, default_daemon_set),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => with_spec(obj, default_cron_job),
        ("", "Service") => with_spec(obj, default_service),
        ("", "Secret") => default_secret(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "PersistentVolumeClaim") => {
            with_spec(obj, default_pvc_spec);
            status_phase(obj, "Pending");
        }
        ("", "PersistentVolume") => {
            with_spec(obj, |spec| {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
                if let Some(c) = obj_mut(spec, "capacity") {
                    canonical_quantities(c);
                }
            });
            status_phase(obj, "Pending");
        }
        ("", "Endpoints") => {
            if let Some(o) = obj.as_object_mut() {
                each_obj_mut(o, "subsets", |s| {
                    each_obj_mut(s, "ports", |p| default(p, "protocol", json!("TCP")))
                });
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            if let Some(o) = obj.as_object_mut() {
                each_obj_mut(o, "ports", |p| {
                    default(p, "name", json!(""));
                    default(p, "protocol", json!("TCP"));
                });
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => with_spec(obj, default_network_policy),
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(o) = obj.as_object_mut() {
                default(o, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Some(o) = obj.as_object_mut() {
                default(o, "reclaimPolicy", json!("Delete"));
                default(o, "volumeBindingMode", json!("Immediate"));
            }
        }
        ("", "LimitRange") => with_spec(obj, |spec| {
            each_obj_mut(spec, "limits", default_limit_range_item)
        }),
        ("", "ResourceQuota") => with_spec(obj, |spec| {
            if let Some(h) = obj_mut(spec, "hard") {
                canonical_quantities(h);
            }
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            with_spec(obj, |spec| default(spec, "minReplicas", json!(1)))
        }
        _ => {}
    }
    apply_status_defaults(group, kind, obj);
}

/// A Container item's default limit falls back to its max, its default
/// request to the default limit, then to its min (SetDefaults_LimitRangeItem).
fn default_limit_range_item(item: &mut Obj) {
    for part in [
        "default",
        "defaultRequest",
        "max",
        "min",
        "maxLimitRequestRatio",
    ] {
        if let Some(l) = obj_mut(item, part) {
            canonical_quantities(l);
        }
    }
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let from = |item: &Obj, part: &str| item.get(part).and_then(Value::as_object).cloned();
    for (into, source) in [
        ("default", "max"),
        ("defaultRequest", "default"),
        ("defaultRequest", "min"),
    ] {
        let Some(source) = from(item, source) else {
            continue;
        };
        if let Some(target) = ensure_obj(item, into) {
            for (k, v) in source {
                target.entry(k).or_insert(v);
            }
        }
    }
}

fn with_spec(obj: &mut Value, f: impl FnOnce(&mut Obj)) {
    if let Some(spec) = obj.as_object_mut().and_then(|o| ensure_obj(o, "spec")) {
        f(spec);
    }
}

fn template(spec: &mut Obj) {
    if let Some(t) = ensure_obj(spec, "template") {
        default_pod_template(t);
    }
}

/// A status the controllers will fill; upstream serializes it from a zero
/// struct, so some counters show as 0 from the start.
fn empty_status(obj: &mut Value, zero_fields: &[&str]) {
    if let Some(status) = obj.as_object_mut().and_then(|o| ensure_obj(o, "status")) {
        for f in zero_fields {
            default(status, f, json!(0));
        }
    }
}

fn status_phase(obj: &mut Value, phase: &str) {
    if let Some(status) = obj.as_object_mut().and_then(|o| ensure_obj(o, "status")) {
        default(status, "phase", json!(phase));
    }
}

fn default_deployment(spec: &mut Obj) {
    default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

fn default_stateful_set(spec: &mut Obj) {
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
        if strategy
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            strategy.insert("type".into(), json!("RollingUpdate"));
            default(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = obj_mut(strategy, "rollingUpdate") {
                default(ru, "partition", json!(0));
            }
        }
    }
    if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        default(p, "whenDeleted", json!("Retain"));
        default(p, "whenScaled", json!("Retain"));
    }
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
    // Claim templates are full PVC objects and default like them.
    each_obj_mut(spec, "volumeClaimTemplates", |pvc| {
        if let Some(meta) = ensure_obj(pvc, "metadata") {
            default_template_meta(meta);
        }
        if let Some(s) = ensure_obj(pvc, "spec") {
            default_pvc_spec(s);
        }
        if let Some(status) = ensure_obj(pvc, "status") {
            default(status, "phase", json!("Pending"));
        }
    });
}

fn default_daemon_set(spec: &mut Obj) {
    if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
        }
    }
    default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
}

fn default_replication_controller(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let template_labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(spec) = ensure_obj(o, "spec") {
            if spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
            {
                spec.insert("selector".into(), labels.clone());
            }
        }
        if let Some(meta) = ensure_obj(o, "metadata") {
            if meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
            {
                meta.insert("labels".into(), labels);
            }
        }
    }
    with_spec(obj, |spec| {
        default(spec, "replicas", json!(1));
        if spec.get("template").is_some_and(|t| !t.is_null()) {
            template(spec);
        }
    });
}

fn default_job(obj: &mut Value) {
    with_spec(obj, |spec| {
        // A Job with neither set runs one pod once; with only parallelism
        // set it is a work queue and completions stays unset.
        if !has(spec, "completions") && !has(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        default(spec, "parallelism", json!(1));
        if !has(spec, "backoffLimit") {
            let limit = if has(spec, "backoffLimitPerIndex") {
                i64::from(i32::MAX)
            } else {
                6
            };
            spec.insert("backoffLimit".into(), json!(limit));
        }
        default(spec, "completionMode", json!("NonIndexed"));
        default(spec, "suspend", json!(false));
        let policy = if has(spec, "podFailurePolicy") {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        default(spec, "podReplacementPolicy", json!(policy));
        if let Some(pfp) = obj_mut(spec, "podFailurePolicy") {
            each_obj_mut(pfp, "rules", |rule| {
                each_obj_mut(rule, "onPodConditions", |c| {
                    default(c, "status", json!("True"))
                });
            });
        }
        template(spec);
    });
    copy_template_labels_to_job(obj);
}

fn has(m: &Obj, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// A Job without labels takes its template's (upstream re-applies this on
/// every read, so the generated selector labels show up there too).
fn copy_template_labels_to_job(obj: &mut Value) {
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let (Some(labels), Some(o)) = (labels, obj.as_object_mut()) {
        if let Some(meta) = ensure_obj(o, "metadata") {
            if meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
            {
                meta.insert("labels".into(), labels);
            }
        }
    }
}

/// At Job create (unless `manualSelector: true`): label the template with
/// the Job's uid and name and select on the uid, so the Job only ever
/// adopts its own pods.
pub fn default_job_selector(obj: &mut Value, uid: &str) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = obj.as_object_mut().and_then(|o| ensure_obj(o, "spec")) else {
        return;
    };
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(ml) = ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels")) {
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
    copy_template_labels_to_job(obj);
}

fn default_cron_job(spec: &mut Obj) {
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = ensure_obj(spec, "jobTemplate") {
        if let Some(meta) = ensure_obj(jt, "metadata") {
            default_template_meta(meta);
        }
        if let Some(js) = ensure_obj(jt, "spec") {
            template(js);
        }
    }
}

fn default_service(spec: &mut Obj) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    each_obj_mut(spec, "ports", |p| {
        default(p, "protocol", json!("TCP"));
        let target_unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset {
            if let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
    });
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if externally_accessible(&Value::Object(spec.clone())) {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        // Single-stack IPv4 cluster: what the IP allocator would record.
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
}

/// stringData is write-only: it is merged into data (and wins) and never
/// stored.
fn default_secret(obj: &mut Value) {
    use base64::Engine;
    let Some(o) = obj.as_object_mut() else { return };
    default(o, "type", json!("Opaque"));
    if let Some(Value::Object(string_data)) = o.remove("stringData") {
        if let Some(data) = ensure_obj(o, "data") {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or("");
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
}

fn default_namespace(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let (Some(name), Some(meta)) = (name, ensure_obj(o, "metadata")) {
        if let Some(labels) = ensure_obj(meta, "labels") {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(spec) = ensure_obj(o, "spec") {
        default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(o, "status") {
        default(status, "phase", json!("Active"));
    }
}

fn default_pvc_spec(spec: &mut Obj) {
    default(spec, "volumeMode", json!("Filesystem"));
    if let Some(res) = obj_mut(spec, "resources") {
        for list in ["requests", "limits"] {
            if let Some(l) = obj_mut(res, list) {
                canonical_quantities(l);
            }
        }
    }
}

fn default_network_policy(spec: &mut Obj) {
    for dir in ["ingress", "egress"] {
        each_obj_mut(spec, dir, |rule| {
            each_obj_mut(rule, "ports", |p| default(p, "protocol", json!("TCP")))
        });
    }
    let has_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_types {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

/// Workload statuses as upstream first serializes them.
pub fn apply_status_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apps", "Deployment") | ("batch", "Job") | ("batch", "CronJob") => empty_status(obj, &[]),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => empty_status(obj, &["replicas"]),
        ("apps", "StatefulSet") => empty_status(obj, &["replicas", "availableReplicas"]),
        ("apps", "DaemonSet") => empty_status(
            obj,
            &[
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
            ],
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_deployment() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
        }});
        apply_defaults("apps", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["template"]["metadata"],
            json!({"labels": {"app": "web"}, "creationTimestamp": null})
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["securityContext"], json!({}));
        assert!(pod.get("serviceAccountName").is_none());
        assert!(pod.get("enableServiceLinks").is_none());
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        // Idempotent.
        let before = d.clone();
        apply_defaults("apps", "Deployment", &mut d);
        assert_eq!(d, before);
    }

    #[test]
    fn recreate_strategy_gets_no_rolling_update() {
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn bare_service() {
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        apply_defaults("", "Service", &mut s);
        assert_eq!(
            s["spec"],
            json!({
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack"
            })
        );
        let mut s =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}});
        apply_defaults("", "Service", &mut s);
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        let mut s = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply_defaults("", "Service", &mut s);
        assert!(s["spec"].get("ipFamilies").is_none());
        assert!(s["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn statefulset_daemonset_replicaset() {
        let mut ss = json!({"spec": {"template": {"spec": {"containers": []}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1024Mi"}}}}]}});
        apply_defaults("apps", "StatefulSet", &mut ss);
        let spec = &ss["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        let vct = &spec["volumeClaimTemplates"][0];
        assert_eq!(vct["spec"]["volumeMode"], "Filesystem");
        assert_eq!(vct["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert_eq!(vct["status"], json!({"phase": "Pending"}));

        let mut ds = json!({"spec": {"template": {"spec": {}}}});
        apply_defaults("apps", "DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

        let mut rs = json!({"spec": {}});
        apply_defaults("apps", "ReplicaSet", &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
    }

    #[test]
    fn replication_controller_selector_from_template() {
        let mut rc = json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"app": "r"}}, "spec": {}}}});
        apply_defaults("", "ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "r"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "r"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn jobs() {
        let mut j = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply_defaults("batch", "Job", &mut j);
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(spec.get("manualSelector").is_none());

        default_job_selector(&mut j, "uid-1");
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-1"}})
        );
        let labels = json!({
            "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "uid-1", "batch.kubernetes.io/controller-uid": "uid-1"
        });
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);

        let mut work_queue = json!({"spec": {"parallelism": 3, "template": {"spec": {}}}});
        apply_defaults("batch", "Job", &mut work_queue);
        assert!(work_queue["spec"].get("completions").is_none());

        let mut manual =
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        default_job_selector(&mut manual, "u");
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
    }

    #[test]
    fn cron_job() {
        let mut cj = json!({"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        apply_defaults("batch", "CronJob", &mut cj);
        let spec = &cj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        assert_eq!(
            spec["jobTemplate"]["metadata"],
            json!({"creationTimestamp": null})
        );
        assert_eq!(
            spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
            "Always"
        );
        assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
    }

    #[test]
    fn secrets_namespaces_volumes() {
        let mut s = json!({"stringData": {"password": "hunter2"}, "data": {"user": "YWRtaW4="}});
        apply_defaults("", "Secret", &mut s);
        assert_eq!(
            s,
            json!({"data": {"user": "YWRtaW4=", "password": "aHVudGVyMg=="}, "type": "Opaque"})
        );

        let mut ns = json!({"metadata": {"name": "dev"}});
        apply_defaults("", "Namespace", &mut ns);
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "dev"})
        );
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));

        let mut pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"]}});
        apply_defaults("", "PersistentVolumeClaim", &mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"]["phase"], "Pending");

        let mut pv = json!({"spec": {"capacity": {"storage": "1024Mi"}}});
        apply_defaults("", "PersistentVolume", &mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");

        let mut sc = json!({"provisioner": "x"});
        apply_defaults("storage.k8s.io", "StorageClass", &mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
    }

    #[test]
    fn network_policy_and_endpoints() {
        let mut np = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        apply_defaults("networking.k8s.io", "NetworkPolicy", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let mut np = json!({"spec": {"podSelector": {}}});
        apply_defaults("networking.k8s.io", "NetworkPolicy", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));

        let mut ep = json!({"subsets": [{"ports": [{"port": 80}]}]});
        apply_defaults("", "Endpoints", &mut ep);
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        let mut es = json!({"ports": [{"port": 80}]});
        apply_defaults("discovery.k8s.io", "EndpointSlice", &mut es);
        assert_eq!(
            es["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
    }

    #[test]
    fn workload_status() {
        let mut ss = json!({});
        apply_status_defaults("apps", "StatefulSet", &mut ss);
        assert_eq!(ss["status"], json!({"replicas": 0, "availableReplicas": 0}));
        let mut d = json!({"status": {"replicas": 3}});
        apply_status_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["status"], json!({"replicas": 3}));
    }
}
