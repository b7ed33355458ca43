//! Workload controllers against an API-only server: the objects they
//! create, their owners, counts and statuses (pod readiness is driven
//! through the status subresource, as a kubelet would).

mod common;

use std::time::Duration;

use common::{assert_ok, wait_until, Server};

const WAIT: Duration = Duration::from_secs(60);

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    assert_ok(&out, manifest);
}

fn pod_names(s: &Server, selector: &str) -> Vec<String> {
    let out = s.kubectl(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[?(!@.metadata.deletionTimestamp)]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn jsonpath(s: &Server, kind: &str, name: &str, path: &str) -> String {
    let out = s.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Marks a pod Running and Ready through pods/status.
fn make_ready(s: &Server, pod: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let patch = format!(
        r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{now}"}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

const RS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 3
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

#[test]
fn replicaset_keeps_its_replicas_and_counts_them() {
    let s = Server::start();
    apply(&s, RS);
    wait_until("3 pods", WAIT, || pod_names(&s, "app=front").len() == 3);
    let names = pod_names(&s, "app=front");
    for n in &names {
        assert!(
            n.starts_with("front-") && n.len() == "front-".len() + 5,
            "{n}"
        );
        assert_eq!(
            jsonpath(&s, "pod", n, "{.metadata.ownerReferences[0].kind}"),
            "ReplicaSet"
        );
        assert_eq!(
            jsonpath(&s, "pod", n, "{.metadata.ownerReferences[0].controller}"),
            "true"
        );
    }
    wait_until("status.replicas 3", WAIT, || {
        jsonpath(&s, "rs", "front", "{.status.replicas}") == "3"
    });
    make_ready(&s, &names[0]);
    wait_until("one ready and available", WAIT, || {
        jsonpath(
            &s,
            "rs",
            "front",
            "{.status.readyReplicas}/{.status.availableReplicas}",
        ) == "1/1"
    });
    // A lost pod is replaced.
    s.ok(&["delete", "pod", &names[1], "--wait=false"]);
    wait_until("replacement", WAIT, || {
        let now = pod_names(&s, "app=front");
        now.len() == 3 && !now.contains(&names[1])
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=front",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    // Scaled down, the ready pod is the one kept.
    s.ok(&["scale", "rs", "front", "--replicas=1"]);
    wait_until("one pod left", WAIT, || {
        pod_names(&s, "app=front") == vec![names[0].clone()]
    });
    // An orphan that matches is adopted; with one too many, one goes.
    apply(
        &s,
        r#"apiVersion: v1
kind: Pod
metadata: {name: stray, labels: {app: front}}
spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    wait_until("back to one pod", WAIT, || {
        pod_names(&s, "app=front").len() == 1
    });
    // A pod relabelled out of the selector is released and replaced.
    let kept = pod_names(&s, "app=front").remove(0);
    s.ok(&["label", "pod", &kept, "app=gone", "--overwrite"]);
    wait_until("released and replaced", WAIT, || {
        jsonpath(&s, "pod", &kept, "{.metadata.ownerReferences}").is_empty()
            && pod_names(&s, "app=front").len() == 1
    });
}
