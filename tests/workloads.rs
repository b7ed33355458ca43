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

const STS: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

/// The names of the set's pods not being deleted, sorted.
fn sts_pods(s: &Server) -> Vec<String> {
    let mut names = pod_names(s, "app=web");
    names.sort();
    names
}

#[test]
fn statefulset_orders_pods_keeps_claims_and_rolls_back() {
    let s = Server::start();
    apply(&s, STS);
    // OrderedReady: each pod only once its predecessor is Running and Ready.
    for n in 0..3 {
        let want: Vec<String> = (0..=n).map(|i| format!("web-{i}")).collect();
        wait_until(&format!("pods up to web-{n}"), WAIT, || {
            sts_pods(&s) == want
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(sts_pods(&s), want, "no pod before its predecessor is ready");
        make_ready(&s, &format!("web-{n}"));
    }
    assert_eq!(
        jsonpath(&s, "pod", "web-1", "{.spec.hostname}/{.spec.subdomain}"),
        "web-1/web"
    );
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "web-1",
            "{.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}"
        ),
        "data-web-1"
    );
    // The claims exist, got the default class, and carry the selector labels.
    for n in 0..3 {
        let claim = format!("data-web-{n}");
        assert_eq!(
            jsonpath(
                &s,
                "pvc",
                &claim,
                "{.spec.storageClassName}/{.metadata.labels.app}"
            ),
            "local-path/web"
        );
    }
    wait_until("status counts", WAIT, || {
        jsonpath(
            &s,
            "sts",
            "web",
            "{.status.replicas}/{.status.readyReplicas}",
        ) == "3/3"
    });
    let first = jsonpath(&s, "sts", "web", "{.status.updateRevision}");
    assert_eq!(
        first,
        jsonpath(&s, "sts", "web", "{.status.currentRevision}")
    );
    assert_eq!(
        jsonpath(
            &s,
            "pod",
            "web-0",
            "{.metadata.labels.controller-revision-hash}"
        ),
        first
    );

    // A rolling update replaces pods from the highest ordinal down, one at
    // a time, and completes once all are updated and ready.
    s.ok(&["set", "env", "sts/web", "ROUND=2"]);
    wait_until("a new update revision", WAIT, || {
        jsonpath(&s, "sts", "web", "{.status.updateRevision}") != first
    });
    let second = jsonpath(&s, "sts", "web", "{.status.updateRevision}");
    let rev_of = |n: usize| {
        jsonpath(
            &s,
            "pod",
            &format!("web-{n}"),
            "{.metadata.labels.controller-revision-hash}",
        )
    };
    for n in (0..3).rev() {
        wait_until(&format!("web-{n} updated"), WAIT, || rev_of(n) == second);
        for below in 0..n {
            assert_eq!(rev_of(below), first, "web-{below} waits for web-{n}");
        }
        make_ready(&s, &format!("web-{n}"));
    }
    wait_until("update complete", WAIT, || {
        jsonpath(&s, "sts", "web", "{.status.currentRevision}") == second
    });
    let status = s.kubectl(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert_ok(&status, "rollout status");
    let history = s.ok(&["rollout", "history", "sts/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo goes back to the first template, which becomes revision 3.
    s.ok(&["rollout", "undo", "sts/web"]);
    wait_until("back to the first revision", WAIT, || {
        jsonpath(&s, "sts", "web", "{.status.updateRevision}") == first
    });
    assert_eq!(
        jsonpath(&s, "controllerrevision", &first, "{.revision}"),
        "3"
    );
    assert!(jsonpath(&s, "sts", "web", "{.spec.template.spec.containers[0].env}").is_empty());
    for n in (0..3).rev() {
        wait_until(&format!("web-{n} rolled back"), WAIT, || rev_of(n) == first);
        make_ready(&s, &format!("web-{n}"));
    }

    // Scale down goes from the top, one at a time; claims stay (Retain).
    // A finalizer holds each condemned pod in Terminating, so the order
    // shows.
    let hold = |pod: &str, on: bool| {
        let patch = if on {
            r#"{"metadata":{"finalizers":["kone.test/hold"]}}"#
        } else {
            r#"{"metadata":{"finalizers":null}}"#
        };
        s.ok(&["patch", "pod", pod, "--type=merge", "-p", patch]);
    };
    hold("web-1", true);
    hold("web-2", true);
    let deleting =
        |pod: &str| !jsonpath(&s, "pod", pod, "{.metadata.deletionTimestamp}").is_empty();
    s.ok(&["scale", "sts/web", "--replicas=1"]);
    wait_until("web-2 terminating", WAIT, || deleting("web-2"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!deleting("web-1"), "web-1 waits for web-2 to be gone");
    hold("web-2", false);
    wait_until("then web-1", WAIT, || deleting("web-1"));
    hold("web-1", false);
    wait_until("only web-0", WAIT, || sts_pods(&s) == ["web-0"]);
    let claims = s.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 3, "{claims}");
}

#[test]
fn statefulset_parallel_with_partition_and_claim_retention() {
    let s = Server::start();
    apply(
        &s,
        &STS.replace("replicas: 3", "replicas: 3\n  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}\n  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}"),
    );
    // Parallel: all at once, without waiting for readiness.
    wait_until("three pods at once", WAIT, || sts_pods(&s).len() == 3);
    for n in 0..3 {
        make_ready(&s, &format!("web-{n}"));
    }
    let first = jsonpath(&s, "sts", "web", "{.status.updateRevision}");
    s.ok(&["set", "env", "sts/web", "ROUND=2"]);
    // Only ordinals at or above the partition move to the new revision.
    wait_until("web-2 updated", WAIT, || {
        jsonpath(
            &s,
            "pod",
            "web-2",
            "{.metadata.labels.controller-revision-hash}",
        ) != first
            && !jsonpath(
                &s,
                "pod",
                "web-2",
                "{.metadata.labels.controller-revision-hash}",
            )
            .is_empty()
    });
    make_ready(&s, "web-2");
    wait_until("partitioned status", WAIT, || {
        jsonpath(
            &s,
            "sts",
            "web",
            "{.status.updatedReplicas}/{.status.currentReplicas}",
        ) == "1/2"
    });
    for n in 0..2 {
        assert_eq!(
            jsonpath(
                &s,
                "pod",
                &format!("web-{n}"),
                "{.metadata.labels.controller-revision-hash}"
            ),
            first
        );
    }
    // whenScaled: Delete — a condemned pod's claim goes with it.
    s.ok(&["scale", "sts/web", "--replicas=2"]);
    wait_until("web-2 and its claim gone", WAIT, || {
        sts_pods(&s).len() == 2 && s.ok(&["get", "pvc", "-o", "name"]).lines().count() == 2
    });
}

#[test]
fn daemonset_follows_nodes() {
    let s = Server::start();
    let node = |name: &str, labels: &str| {
        apply(
            &s,
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n"
            ),
        )
    };
    node("n1", "disk: ssd");
    node("n2", "disk: ssd");
    node("n3", "disk: hdd");
    apply(
        &s,
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: c, image: busybox}]
"#,
    );
    let nodes_of_pods = || {
        let mut n: Vec<String> = pods(
            &s,
            "app=agent",
            "{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}",
        )
        .into_iter()
        .map(|(_, node)| node)
        .collect();
        n.sort();
        n
    };
    let counts = || {
        jsonpath(
            &s,
            "ds",
            "agent",
            "{.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberMisscheduled}",
        )
    };
    wait_until("one pod on each ssd node", WAIT, || {
        nodes_of_pods() == ["n1", "n2"] && counts() == "2/2/0"
    });
    let tolerations = jsonpath(
        &s,
        "pod",
        &pod_names(&s, "app=agent")[0],
        "{.spec.tolerations[*].key}",
    );
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(tolerations.contains(key), "{tolerations}");
    }
    // A node that starts to match gets a pod; a removed node loses its pod.
    s.ok(&["label", "node", "n3", "disk=ssd", "--overwrite"]);
    wait_until("three nodes", WAIT, || {
        nodes_of_pods() == ["n1", "n2", "n3"] && counts() == "3/3/0"
    });
    s.ok(&["delete", "node", "n1"]);
    wait_until("two nodes again", WAIT, || {
        nodes_of_pods() == ["n2", "n3"] && counts() == "2/2/0"
    });
    // A node tainted NoExecute loses its pod; NoSchedule alone keeps it
    // as misscheduled (may stay, may not be placed anew).
    s.ok(&["taint", "node", "n2", "dedicated=x:NoSchedule"]);
    wait_until("misscheduled", WAIT, || counts() == "1/1/1");
    s.ok(&["taint", "node", "n2", "dedicated=x:NoExecute"]);
    wait_until("evicted", WAIT, || {
        nodes_of_pods() == ["n3"] && counts() == "1/1/0"
    });

    // A template change makes a second revision and replaces the pods
    // (none is available: fake nodes run nothing, so none is kept back).
    s.ok(&["set", "env", "ds/agent", "ROUND=2"]);
    wait_until("updated", WAIT, || {
        jsonpath(&s, "ds", "agent", "{.status.updatedNumberScheduled}") == "1"
            && pods(&s, "app=agent", "{.spec.containers[0].env[0].value}")
                .iter()
                .all(|(_, v)| v == "2")
    });
    let history = s.ok(&["rollout", "history", "ds/agent"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    assert_eq!(
        s.ok(&["get", "controllerrevisions", "-o", "name"])
            .lines()
            .count(),
        2
    );
}

#[test]
fn replicationcontroller_is_a_replicaset_with_equality_selectors() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: v1
kind: ReplicationController
metadata: {name: old}
spec:
  replicas: 2
  selector: {app: old}
  template:
    metadata: {labels: {app: old}}
    spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    wait_until("2 pods", WAIT, || pod_names(&s, "app=old").len() == 2);
    let name = pod_names(&s, "app=old").remove(0);
    assert_eq!(
        jsonpath(&s, "pod", &name, "{.metadata.ownerReferences[0].kind}"),
        "ReplicationController"
    );
    make_ready(&s, &name);
    wait_until("status", WAIT, || {
        jsonpath(
            &s,
            "rc",
            "old",
            "{.status.replicas}/{.status.readyReplicas}",
        ) == "2/1"
    });
    s.ok(&["scale", "rc", "old", "--replicas=3"]);
    wait_until("3 pods", WAIT, || pod_names(&s, "app=old").len() == 3);
    s.ok(&["delete", "rc", "old"]);
    wait_until("pods collected", WAIT, || {
        pod_names(&s, "app=old").is_empty()
    });
}

#[test]
fn claims_bind_to_volumes_and_local_path_provisions() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {name: small, labels: {tier: a}}
spec:
  storageClassName: manual
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/kone-test-small}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: big, labels: {tier: a}}
spec:
  storageClassName: manual
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/kone-test-big}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: want}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"#,
    );
    wait_until("claim bound to the volume that fits", WAIT, || {
        jsonpath(&s, "pvc", "want", "{.status.phase}/{.spec.volumeName}") == "Bound/big"
            && jsonpath(&s, "pv", "big", "{.status.phase}/{.spec.claimRef.name}") == "Bound/want"
    });
    assert_eq!(
        jsonpath(&s, "pvc", "want", "{.status.capacity.storage}"),
        "5Gi"
    );
    assert_eq!(jsonpath(&s, "pv", "small", "{.status.phase}"), "Available");
    s.ok(&["delete", "pvc", "want"]);
    wait_until("released, kept (Retain)", WAIT, || {
        jsonpath(&s, "pv", "big", "{.status.phase}") == "Released"
    });

    // The default class waits for a consumer's node, then provisions there.
    assert_eq!(
        jsonpath(
            &s,
            "storageclass",
            "local-path",
            "{.provisioner}/{.volumeBindingMode}/{.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}"
        ),
        "rancher.io/local-path/WaitForFirstConsumer/true"
    );
    apply(
        &s,
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: local}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#,
    );
    wait_until("waiting for a consumer", WAIT, || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=local",
        ])
        .contains("WaitForFirstConsumer")
    });
    assert_eq!(jsonpath(&s, "pvc", "local", "{.status.phase}"), "Pending");
    s.ok(&[
        "annotate",
        "pvc",
        "local",
        "volume.kubernetes.io/selected-node=n1",
    ]);
    let uid = jsonpath(&s, "pvc", "local", "{.metadata.uid}");
    let pv = format!("pvc-{uid}");
    wait_until("provisioned and bound", WAIT, || {
        jsonpath(&s, "pvc", "local", "{.status.phase}/{.spec.volumeName}") == format!("Bound/{pv}")
    });
    let path = jsonpath(&s, "pv", &pv, "{.spec.hostPath.path}");
    assert!(
        path.starts_with(common::path_str(&s.data_dir().join("storage")))
            && path.ends_with("_default_local"),
        "{path}"
    );
    assert_eq!(
        jsonpath(
            &s,
            "pv",
            &pv,
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}/{.spec.persistentVolumeReclaimPolicy}"
        ),
        "n1/Delete"
    );
    s.ok(&["delete", "pvc", "local"]);
    wait_until("deleted with its claim", WAIT, || {
        s.kubectl(&["get", "pv", &pv]).status.code() == Some(1)
    });
}

/// Fails one pending pod of the selector with a container exit code and
/// extra pod conditions; returns whether there was one.
fn fail_pod(s: &Server, selector: &str, code: i32, conditions: &str) -> bool {
    let Some((name, _)) = pods(s, selector, "{.status.phase}")
        .into_iter()
        .find(|(_, p)| p == "Pending")
    else {
        return false;
    };
    let patch = format!(
        r#"{{"status":{{"phase":"Failed","conditions":[{conditions}],"containerStatuses":[{{"name":"c","image":"busybox","imageID":"","ready":false,"restartCount":0,"state":{{"terminated":{{"exitCode":{code}}}}}}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "pod",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    true
}

#[test]
fn job_pod_failure_policy_ignores_and_fails() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: picky}
spec:
  backoffLimit: 1
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}]
    - action: FailJob
      onExitCodes: {containerName: c, operator: In, values: [42]}
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"#,
    );
    // Disruptions are not counted: two of them stay within backoffLimit 1.
    for _ in 0..2 {
        wait_until("a pod to disrupt", WAIT, || {
            fail_pod(
                &s,
                "job-name=picky",
                137,
                r#"{"type":"DisruptionTarget","status":"True"}"#,
            )
        });
    }
    wait_until("a fresh pod", WAIT, || {
        pods(&s, "job-name=picky", "{.status.phase}")
            .iter()
            .any(|(_, p)| p == "Pending")
    });
    // (Go's omitempty drops a zero count.)
    assert_eq!(jsonpath(&s, "job", "picky", "{.status.failed}"), "");
    assert!(jsonpath(&s, "job", "picky", "{.status.conditions}").is_empty());
    // Exit code 42 fails the Job at once.
    assert!(fail_pod(&s, "job-name=picky", 42, ""));
    wait_until("failed by policy", WAIT, || {
        jsonpath(
            &s,
            "job",
            "picky",
            "{.status.conditions[?(@.type==\"Failed\")].reason}",
        ) == "PodFailurePolicy"
    });
    let message = jsonpath(
        &s,
        "job",
        "picky",
        "{.status.conditions[?(@.type==\"Failed\")].message}",
    );
    assert!(
        message.contains("exit code 42 matching FailJob rule at index 1"),
        "{message}"
    );
}

#[test]
fn deployment_recreate_stops_the_old_pods_first() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: once}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: once}}
  template:
    metadata: {labels: {app: once}}
    spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    wait_until("2 pods", WAIT, || pod_names(&s, "app=once").len() == 2);
    ready_all(&s, "app=once");
    let hashes = || {
        let mut h: Vec<String> = pods(&s, "app=once", "{.metadata.labels.pod-template-hash}")
            .into_iter()
            .map(|(_, h)| h)
            .collect();
        h.sort();
        h.dedup();
        h
    };
    let old = hashes();
    assert_eq!(old.len(), 1);
    s.ok(&["set", "env", "deployment/once", "ROUND=2"]);
    wait_until("new pods only", WAIT, || {
        let now = hashes();
        assert!(now.len() <= 1, "old and new pods at once: {now:?}");
        ready_all(&s, "app=once");
        now.len() == 1 && now != old && pod_names(&s, "app=once").len() == 2
    });
}

#[test]
fn cronjob_forbid_skips_and_replace_replaces() {
    // A minute a second; the jobs' pods never finish.
    let s = Server::start_with_env(&[("KONE_CRONJOB_CLOCK_SPEED", "60")]);
    for policy in ["Forbid", "Replace"] {
        apply(
            &s,
            &format!(
                r#"apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}}}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: {policy}
  jobTemplate:
    spec:
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec:
          restartPolicy: Never
          containers: [{{name: c, image: busybox}}]
"#,
                name = policy.to_lowercase()
            ),
        );
    }
    let jobs = |owner: &str| -> Vec<String> {
        let out = s.ok(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].name}{\" \"}{.metadata.name}{\" \"}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(owner) && f.clone().nth(1).is_none())
                    .then(|| f.next().map(String::from))
                    .flatten()
            })
            .collect()
    };
    let mut replaced = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let forbid = jobs("forbid");
        assert!(forbid.len() <= 1, "Forbid ran two at once: {forbid:?}");
        let replace = jobs("replace");
        assert!(replace.len() <= 1, "Replace kept two: {replace:?}");
        replaced.extend(replace);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(jobs("forbid").len(), 1, "Forbid keeps its one running job");
    assert!(replaced.len() >= 3, "Replace made new jobs: {replaced:?}");
}

#[test]
fn job_replaces_failed_pods_after_upstreams_back_off() {
    let s = Server::start();
    apply(
        &s,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: backoff}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["false"]}]
"#,
    );
    let first = wait_for_pods(&s, "job-name=backoff", 1);
    // Failed as a kubelet reports it: the container's finishedAt is when
    // the back-off starts.
    let finished = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = format!(
        r#"{{"status":{{"phase":"Failed","containerStatuses":[{{"name":"c","image":"busybox","imageID":"","ready":false,"restartCount":0,
            "state":{{"terminated":{{"exitCode":1,"reason":"Error","finishedAt":"{finished}"}}}}}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "pod",
        &first[0],
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    let failed_at = std::time::Instant::now();
    wait_until("the failure is counted", WAIT, || {
        jsonpath(&s, "job", "backoff", "{.status.failed}") == "1"
    });
    // 10 s for the first failure: no replacement for a good while ...
    std::thread::sleep(Duration::from_secs(6).saturating_sub(failed_at.elapsed()));
    assert_eq!(
        wait_for_pods(&s, "job-name=backoff", 1).len(),
        1,
        "replaced too early"
    );
    // ... then one.
    wait_until("replacement pod", WAIT, || {
        pods(&s, "job-name=backoff", "{.status.phase}").len() == 2
    });
    assert!(
        failed_at.elapsed() >= Duration::from_secs(8),
        "{:?}",
        failed_at.elapsed()
    );
}

/// The names of the pods matching `selector`, once there are `n` of them.
fn wait_for_pods(s: &Server, selector: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    wait_until(&format!("{n} pods for {selector}"), WAIT, || {
        names = pods(s, selector, "{.status.phase}")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.len() == n
    });
    names
}
