//! Admission that reads other objects, through the real kubectl:
//! ResourceQuota (usage, "exceeded quota", "must specify"), LimitRange
//! (defaults, max, ratio), PriorityClass and DefaultTolerationSeconds.
//! API-only servers: no pod here needs to run.

mod common;

use std::time::{Duration, Instant};

use common::{assert_ok, Server};
use serde_json::{json, Value};

fn get(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).expect("kubectl json")
}

fn create(s: &Server, manifest: &str) -> std::process::Output {
    s.kubectl_stdin(None, &["create", "-f", "-"], manifest)
}

/// A create that must be refused; returns what kubectl printed.
fn refused(s: &Server, manifest: &str) -> String {
    let out = create(s, manifest);
    assert!(!out.status.success(), "created: {manifest}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pod(name: &str, resources: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: kone.test/busybox:1\n    resources: {resources}\n"
    )
}

fn wait_used(s: &Server, quota: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = get(s, &["get", "resourcequota", quota]);
        if f(&q["status"]["used"]) {
            return q;
        }
        assert!(Instant::now() < deadline, "quota never got there: {q}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn resource_quota_counts_and_refuses() {
    let s = Server::start();
    assert_ok(
        &create(
            &s,
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: \"2\", requests.cpu: \"1\", limits.cpu: \"2\", secrets: \"1\", count/deployments.apps: \"5\"}\n",
        ),
        "quota",
    );
    let q = wait_used(&s, "q", |u| u["pods"] == "0");
    assert_eq!(
        q["status"]["hard"],
        json!({"pods": "2", "requests.cpu": "1", "limits.cpu": "2", "secrets": "1", "count/deployments.apps": "5"})
    );
    assert_eq!(q["status"]["used"]["requests.cpu"], "0");

    let said = refused(&s, &pod("bare", "{}", ""));
    assert!(
        said.contains("pods \"bare\" is forbidden: failed quota: q: must specify limits.cpu for: c; requests.cpu for: c"),
        "{said}"
    );
    let sized = "{requests: {cpu: 600m}, limits: {cpu: \"1\"}}";
    assert_ok(&create(&s, &pod("p1", sized, "")), "p1");
    wait_used(&s, "q", |u| {
        u["requests.cpu"] == "600m" && u["limits.cpu"] == "1" && u["pods"] == "1"
    });
    let said = refused(&s, &pod("p2", sized, ""));
    assert!(
        said.contains("pods \"p2\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
        "{said}"
    );

    assert_ok(
        &create(&s, "apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\n"),
        "s1",
    );
    let said = refused(&s, "apiVersion: v1\nkind: Secret\nmetadata: {name: s2}\n");
    assert!(
        said.contains("secrets \"s2\" is forbidden: exceeded quota: q, requested: secrets=1, used: secrets=1, limited: secrets=1"),
        "{said}"
    );
    s.ok(&[
        "create",
        "deployment",
        "d",
        "--image=kone.test/busybox:1",
        "--replicas=0",
    ]);
    wait_used(&s, "q", |u| u["count/deployments.apps"] == "1");

    // Deleting gives the usage back.
    s.ok(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    wait_used(&s, "q", |u| u["requests.cpu"] == "0" && u["pods"] == "0");
    assert_ok(&create(&s, &pod("p2", sized, "")), "p2 after p1 went");
}

#[test]
fn limit_range_defaults_and_bounds() {
    let s = Server::start();
    assert_ok(
        &create(
            &s,
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 200m}\n    max: {cpu: \"1\"}\n    maxLimitRequestRatio: {cpu: \"4\"}\n",
        ),
        "limitrange",
    );
    let lr = get(&s, &["get", "limitrange", "lr"]);
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "200m", "memory": "256Mi"}),
        "the default request follows the default limit: {lr}"
    );

    assert_ok(&create(&s, &pod("plain", "{}", "")), "plain pod");
    let p = get(&s, &["get", "pod", "plain"]);
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    assert_eq!(p["status"]["qosClass"], "Burstable");

    let said = refused(&s, &pod("big", "{limits: {cpu: \"2\"}}", ""));
    assert!(
        said.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{said}"
    );
    let said = refused(
        &s,
        &pod(
            "skewed",
            "{requests: {cpu: 100m}, limits: {cpu: \"1\"}}",
            "",
        ),
    );
    assert!(
        said.contains(
            "cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000"
        ),
        "{said}"
    );
}

#[test]
fn priority_classes_and_default_tolerations() {
    let s = Server::start();
    let classes = s.ok(&["get", "priorityclasses"]);
    assert!(
        classes.contains("system-node-critical") && classes.contains("system-cluster-critical"),
        "{classes}"
    );
    assert_ok(
        &create(
            &s,
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\npreemptionPolicy: Never\n",
        ),
        "class",
    );
    assert_ok(
        &create(&s, &pod("vip", "{}", "  priorityClassName: high\n")),
        "vip",
    );
    let p = get(&s, &["get", "pod", "vip"]);
    assert_eq!(p["spec"]["priority"], 1000);
    assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    assert_eq!(
        p["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );

    let said = refused(&s, &pod("lost", "{}", "  priorityClassName: nope\n"));
    assert!(
        said.contains("pods \"lost\" is forbidden: no PriorityClass with name nope was found"),
        "{said}"
    );
    let said = refused(
        &s,
        &pod("forged", "{}", "  priorityClassName: high\n  priority: 5\n"),
    );
    assert!(
        said.contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
        "{said}"
    );

    assert_ok(&create(&s, &pod("plain", "{}", "")), "plain");
    assert_eq!(get(&s, &["get", "pod", "plain"])["spec"]["priority"], 0);
    assert_ok(
        &create(
            &s,
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: everyone}\nvalue: 7\nglobalDefault: true\n",
        ),
        "default class",
    );
    assert_ok(&create(&s, &pod("later", "{}", "")), "later");
    let p = get(&s, &["get", "pod", "later"]);
    assert_eq!(p["spec"]["priorityClassName"], "everyone");
    assert_eq!(p["spec"]["priority"], 7);
    let p = get(&s, &["get", "pod", "plain"]);
    assert_eq!(p["spec"]["priority"], 0, "existing pods keep theirs");
}
