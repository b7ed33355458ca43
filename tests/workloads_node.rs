//! Workload controllers with real pods on the kone node (scheduled by the
//! default scheduler), driven by kubectl 1.33 and 1.27.

mod common;

use std::time::Duration;

use common::{assert_ok, wait_until, Server};

const IMAGE: &str = "kone.test/busybox:1";

fn running(s: &Server, selector: &str) -> usize {
    let out = s.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.status.phase}{\" \"}{end}",
    ]);
    out.split_whitespace().filter(|p| *p == "Running").count()
}

#[test]
fn deployment_runs_rolls_and_goes_on_the_node() {
    let s = Server::start_node();
    assert_ok(
        &s.kubectl_v(
            Some("1.33"),
            &[
                "create",
                "deployment",
                "web",
                &format!("--image={IMAGE}"),
                "--replicas=3",
                "--",
                "busybox",
                "httpd",
                "-f",
                "-p",
                "80",
            ],
        ),
        "create deployment",
    );
    assert_ok(
        &s.kubectl_v(
            Some("1.27"),
            &["rollout", "status", "deployment/web", "--timeout=180s"],
        ),
        "rollout status",
    );
    assert_eq!(running(&s, "app=web"), 3);
    assert_ok(
        &s.kubectl_v(Some("1.33"), &["set", "env", "deployment/web", "ROUND=2"]),
        "set env",
    );
    assert_ok(
        &s.kubectl_v(
            Some("1.33"),
            &["rollout", "status", "deployment/web", "--timeout=180s"],
        ),
        "rollout status after the change",
    );
    let env = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].env[0].value}",
    ]);
    assert_eq!(
        env.split_whitespace().filter(|v| *v == "2").count(),
        3,
        "{env}"
    );
    assert_ok(
        &s.kubectl_v(Some("1.27"), &["delete", "deployment", "web"]),
        "delete",
    );
    wait_until("pods gone", Duration::from_secs(120), || {
        s.ok(&["get", "pods", "-o", "name"]).trim().is_empty()
    });
}

#[test]
fn statefulset_comes_up_in_order_on_local_path_volumes() {
    let s = Server::start_node();
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  replicas: 3
  serviceName: web
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {IMAGE}
        command: [sh, -c, "hostname > /data/id && exec sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    );
    assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], &manifest),
        "apply",
    );
    assert_ok(
        &s.kubectl(&["rollout", "status", "sts/web", "--timeout=180s"]),
        "rollout status",
    );
    assert_eq!(running(&s, "app=web"), 3);
    // In order: each pod was made after its predecessor became Ready.
    let field =
        |pod: &str, path: &str| s.ok(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
    for n in 1..3 {
        let ready_before = field(
            &format!("web-{}", n - 1),
            "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
        );
        let created = field(&format!("web-{n}"), "{.metadata.creationTimestamp}");
        assert!(
            created >= ready_before,
            "web-{n} {created} < {ready_before}"
        );
    }
    // Each pod wrote its name into its own claim's local-path folder.
    let storage = s.data_dir().join("storage");
    for n in 0..3 {
        let claim = format!("data-web-{n}");
        let pv = s.ok(&[
            "get",
            "pvc",
            &claim,
            "-o",
            "jsonpath={.status.phase}/{.spec.volumeName}",
        ]);
        let (phase, volume) = pv.split_once('/').unwrap_or_default();
        assert_eq!(phase, "Bound", "{pv}");
        let path = s.ok(&["get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}"]);
        assert!(path.starts_with(common::path_str(&storage)), "{path}");
        let id =
            std::fs::read_to_string(std::path::Path::new(&path).join("id")).unwrap_or_default();
        assert_eq!(id.trim(), format!("web-{n}"));
    }
    // Scale down goes in reverse: web-1 is never gone while web-2 is there.
    s.ok(&["scale", "sts/web", "--replicas=1"]);
    wait_until("down to web-0", Duration::from_secs(120), || {
        let names = s.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        assert!(
            !names.contains("web-2") || names.contains("web-1"),
            "web-1 went before web-2: {names}"
        );
        names.trim() == "pod/web-0"
    });
    let claims = s.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 3, "claims are kept: {claims}");
}
