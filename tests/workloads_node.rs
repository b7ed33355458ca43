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
