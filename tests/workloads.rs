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
    pods(s, selector, "{.metadata.deletionTimestamp}")
        .into_iter()
        .filter(|(_, deleting)| deleting.is_empty())
        .map(|(n, _)| n)
        .collect()
}

/// The pods of a selector with one field of each.
fn pods(s: &Server, selector: &str, field: &str) -> Vec<(String, String)> {
    let out = s.kubectl(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        &format!(
            "jsonpath={{range .items[*]}}{{.metadata.name}}{{\"\\t\"}}{field}{{\"\\n\"}}{{end}}"
        ),
    ]);
    assert_ok(&out, "get pods");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, f)| (n.to_string(), f.to_string()))
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

/// Marks every not-yet-ready pod of the selector Ready; returns how many
/// were marked.
fn ready_all(s: &Server, selector: &str) -> usize {
    let names: Vec<String> = pods(
        s,
        selector,
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
    .into_iter()
    .filter(|(_, ready)| ready.is_empty())
    .map(|(n, _)| n)
    .collect();
    for n in &names {
        // A pod scaled away meanwhile is fine to miss.
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let patch = format!(
            r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{now}"}}]}}}}"#
        );
        let _ = s.kubectl(&[
            "patch",
            "pod",
            n,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }
    names.len()
}

/// Pods of the selector: (all not being deleted, ready among them).
fn counts(s: &Server, selector: &str) -> (usize, usize) {
    let all = pods(
        s,
        selector,
        "{.metadata.deletionTimestamp}/{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    let live: Vec<&String> = all
        .iter()
        .filter(|(_, f)| f.starts_with('/'))
        .map(|(_, f)| f)
        .collect();
    let ready = live.iter().filter(|f| f.as_str() == "/True").count();
    (live.len(), ready)
}

#[test]
fn deployment_rolls_within_its_bounds_and_undoes() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let name = format!("web{}", v.replace('.', ""));
        let sel = format!("app={name}");
        assert_ok(
            &s.kubectl_v(
                Some(v),
                &[
                    "create",
                    "deployment",
                    &name,
                    "--image=busybox",
                    "--replicas=4",
                    "--",
                    "httpd",
                    "-f",
                ],
            ),
            "create deployment",
        );
        wait_until("4 pods", WAIT, || pod_names(&s, &sel).len() == 4);
        ready_all(&s, &sel);
        let dep = format!("deployment/{name}");
        assert_ok(
            &s.kubectl_v(Some(v), &["rollout", "status", &dep, "--timeout=60s"]),
            "status",
        );
        let rs_before = s.ok(&["get", "rs", "-l", &sel, "-o", "name"]);
        assert_eq!(rs_before.lines().count(), 1, "{rs_before}");
        assert_eq!(
            jsonpath(
                &s,
                "deployment",
                &name,
                "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
            ),
            "1"
        );
        // maxSurge 1 and maxUnavailable 1 (25% of 4).
        assert_ok(
            &s.kubectl_v(Some(v), &["set", "image", &dep, "busybox=busybox:2"]),
            "set image",
        );
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (total, ready) = counts(&s, &sel);
            assert!(total <= 5, "{total} pods exceed replicas + maxSurge");
            assert!(
                ready >= 3,
                "{ready} ready pods are fewer than replicas - maxUnavailable"
            );
            let done = jsonpath(
                &s,
                "deployment",
                &name,
                "{.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}",
            ) == "4/4/4";
            if done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rollout did not finish"
            );
            ready_all(&s, &sel);
        }
        assert_ok(
            &s.kubectl_v(Some(v), &["rollout", "status", &dep, "--timeout=60s"]),
            "status",
        );
        let image = |s: &Server| {
            jsonpath(
                s,
                "deployment",
                &name,
                "{.spec.template.spec.containers[0].image}",
            )
        };
        assert_eq!(image(&s), "busybox:2");
        // Undo: back to the first template, as revision 3.
        assert_ok(&s.kubectl_v(Some(v), &["rollout", "undo", &dep]), "undo");
        assert_eq!(image(&s), "busybox");
        wait_until("undo rolled out", WAIT, || {
            ready_all(&s, &sel);
            jsonpath(
                &s,
                "deployment",
                &name,
                "{.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}",
            ) == "4/4/4"
        });
        let history = s.ok(&["rollout", "history", &dep]);
        assert!(history.contains('2') && history.contains('3'), "{history}");
        assert_eq!(
            s.ok(&["get", "rs", "-l", &sel, "-o", "name"])
                .lines()
                .count(),
            2
        );
        // Scale to zero and back.
        assert_ok(
            &s.kubectl_v(Some(v), &["scale", &dep, "--replicas=0"]),
            "scale 0",
        );
        wait_until("no pods", WAIT, || pod_names(&s, &sel).is_empty());
        assert_ok(
            &s.kubectl_v(Some(v), &["scale", &dep, "--replicas=2"]),
            "scale 2",
        );
        wait_until("2 pods", WAIT, || pod_names(&s, &sel).len() == 2);
        let events = s.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ]);
        assert!(events.contains("ScalingReplicaSet"), "{events}");
    }
}

#[test]
fn deleting_a_deployment_cascades_or_orphans() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let keep = format!("keep{}", v.replace('.', ""));
        let gone = format!("gone{}", v.replace('.', ""));
        for n in [&keep, &gone] {
            s.ok(&["create", "deployment", n, "--image=busybox", "--replicas=2"]);
            wait_until("2 pods", WAIT, || {
                pod_names(&s, &format!("app={n}")).len() == 2
            });
        }
        assert_ok(
            &s.kubectl_v(Some(v), &["delete", "deployment", &gone]),
            "delete",
        );
        wait_until("replicasets and pods removed", WAIT, || {
            pod_names(&s, &format!("app={gone}")).is_empty()
                && s.ok(&["get", "rs", "-l", &format!("app={gone}"), "-o", "name"])
                    .trim()
                    .is_empty()
        });
        assert_ok(
            &s.kubectl_v(
                Some(v),
                &["delete", "deployment", &keep, "--cascade=orphan"],
            ),
            "delete orphan",
        );
        wait_until("deployment gone", WAIT, || {
            !s.kubectl(&["get", "deployment", &keep]).status.success()
        });
        std::thread::sleep(Duration::from_secs(2));
        let rs = s.ok(&["get", "rs", "-l", &format!("app={keep}"), "-o", "name"]);
        assert_eq!(rs.lines().count(), 1, "{rs}");
        assert_eq!(pod_names(&s, &format!("app={keep}")).len(), 2);
    }
}

/// Sets the phase of every active pod of the selector; returns how many.
fn finish_all(s: &Server, selector: &str, phase: &str) -> usize {
    let names: Vec<String> = pods(s, selector, "{.status.phase}")
        .into_iter()
        .filter(|(_, p)| p == "Pending")
        .map(|(n, _)| n)
        .collect();
    for n in &names {
        let patch = format!(r#"{{"status":{{"phase":"{phase}"}}}}"#);
        s.ok(&[
            "patch",
            "pod",
            n,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }
    names.len()
}

#[test]
fn job_completes_with_parallelism_and_fails_at_backoff_limit() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: five}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
"#,
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let active = pods(&s, "job-name=five", "{.status.phase}")
            .iter()
            .filter(|(_, p)| p == "Pending")
            .count();
        assert!(active <= 2, "{active} pods at once with parallelism 2");
        if jsonpath(
            &s,
            "job",
            "five",
            "{.status.conditions[?(@.type==\"Complete\")].status}",
        ) == "True"
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "job did not complete");
        finish_all(&s, "job-name=five", "Succeeded");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(jsonpath(&s, "job", "five", "{.status.succeeded}"), "5");
    assert!(!jsonpath(&s, "job", "five", "{.status.completionTime}").is_empty());

    apply(
        &s,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["false"]}]
"#,
    );
    wait_until("BackoffLimitExceeded", WAIT, || {
        finish_all(&s, "job-name=doomed", "Failed");
        jsonpath(
            &s,
            "job",
            "doomed",
            "{.status.conditions[?(@.type==\"Failed\")].reason}",
        ) == "BackoffLimitExceeded"
    });
    assert_eq!(jsonpath(&s, "job", "doomed", "{.status.failed}"), "3");
}

#[test]
fn cronjob_creates_jobs_and_keeps_its_history() {
    // The CronJob controller's clock runs 60 times faster: a minute a second.
    let s = Server::start_with_env(&[("KONE_CRONJOB_CLOCK_SPEED", "60")]);
    apply(
        &s,
        r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  timeZone: Europe/Berlin
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: tick}}
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox, command: ["true"]}]
"#,
    );
    let mut seen = std::collections::BTreeSet::new();
    wait_until("four jobs over time, history kept at two", WAIT, || {
        finish_all(&s, "app=tick", "Succeeded");
        let out = s.ok(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\" \"}{end}",
        ]);
        seen.extend(out.split_whitespace().map(String::from));
        let complete = s.ok(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Complete\")].status}{\" \"}{end}",
        ]);
        seen.len() >= 4 && complete.split_whitespace().count() <= 2
    });
    for name in &seen {
        assert!(name.starts_with("tick-"), "{name}");
    }
    assert!(!jsonpath(&s, "cronjob", "tick", "{.status.lastScheduleTime}").is_empty());
    wait_until("lastSuccessfulTime", WAIT, || {
        finish_all(&s, "app=tick", "Succeeded");
        !jsonpath(&s, "cronjob", "tick", "{.status.lastSuccessfulTime}").is_empty()
    });
}
