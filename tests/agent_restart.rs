//! `kone agent` across restarts and against a second machine, k3s's way:
//! the agent keeps its certificates, so restarted while its server is down
//! it starts anyway, leaves its pod's container running and reports again
//! once the server is back; and its node password keeps another machine
//! from joining under its node name until the Node is deleted.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{text, wait_until, Server};

fn get(s: &Server, args: &[&str]) -> String {
    text(&s.kubectl(args).stdout)
}

fn ready_condition(s: &Server, node: &str) -> String {
    get(
        s,
        &[
            "get",
            "node",
            node,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}"#,
        ],
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: kone.test/busybox:1
    command: ["sh", "-c", "echo started; exec sleep 3600"]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
"#;

/// Fields of the sleeper pod, by JSONPath.
fn sleeper(s: &Server, jsonpath: &str) -> String {
    get(
        s,
        &[
            "get",
            "pod",
            "sleeper",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
    )
}

/// startedAt/restartCount/containerID of the pod's container.
fn container_run(s: &Server) -> String {
    sleeper(
        s,
        "{.status.containerStatuses[0].state.running.startedAt}/{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].containerID}",
    )
}

#[test]
fn agent_restarted_while_its_server_is_down_keeps_its_pod() {
    let mut s = Server::start_node_without_agent();
    let token = s.join_token();
    let mut agent = s.spawn_agent("node2", &token);
    wait_until("node2 Ready", Duration::from_secs(60), || {
        assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());
        ready_condition(&s, "node2").starts_with("True/")
    });
    common::assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], SLEEPER),
        "apply",
    );
    wait_until("sleeper Ready", Duration::from_secs(90), || {
        sleeper(
            &s,
            "{.spec.nodeName}/{.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "node2/Running/True"
    });
    let before = container_run(&s);
    assert!(before.contains("/0/kone://"), "{before}");

    // k3s's agent directory: the node's certificates and its password.
    let agent_dir = s.data_dir().join("agent");
    for (file, want) in [
        ("client-kubelet.key", 0o600),
        ("serving-kubelet.key", 0o600),
        ("node-password", 0o600),
        ("kubelet.kubeconfig", 0o600),
        ("client-kubelet.crt", 0o644),
        ("serving-kubelet.crt", 0o644),
        ("server-ca.crt", 0o644),
        ("client-ca.crt", 0o644),
    ] {
        assert_eq!(mode(&agent_dir.join(file)), want, "{file}");
    }

    // Server down, then the agent restarted: it starts from what it kept
    // and waits for the server instead of exiting.
    let heartbeat = ready_condition(&s, "node2");
    s.kill9();
    drop(agent);
    let mut agent = s.spawn_agent("node2", &token);
    wait_until(
        "the agent to wait for its server",
        Duration::from_secs(30),
        || {
            let log = s.agent_log();
            log.contains("the server is unreachable; starting from the kept node identity")
                && log.contains("the server is unreachable; retrying")
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());

    s.start_again();
    wait_until(
        "node2 Ready with a new heartbeat",
        Duration::from_secs(60),
        || {
            assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());
            let now = ready_condition(&s, "node2");
            now.starts_with("True/") && now != heartbeat
        },
    );
    // The container was adopted, not started again.
    wait_until("sleeper Ready again", Duration::from_secs(60), || {
        sleeper(
            &s,
            "{.spec.nodeName}/{.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "node2/Running/True"
    });
    assert_eq!(container_run(&s), before);
    assert!(
        s.agent_log().contains("the server is reachable again"),
        "{}",
        s.agent_log()
    );
    assert_eq!(get(&s, &["logs", "sleeper"]), "started\n");
    let out = s.kubectl(&["exec", "sleeper", "--", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    // And the restarted kubelet acts on the pod: deletion completes.
    s.ok(&["delete", "pod", "sleeper", "--wait=true", "--timeout=60s"]);
    assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());

    // A lost certificate means joining again, which the node's own
    // password still may.
    drop(agent);
    std::fs::remove_file(agent_dir.join("client-kubelet.crt")).expect("remove the certificate");
    let heartbeat = ready_condition(&s, "node2");
    let mut agent = s.spawn_agent("node2", &token);
    wait_until("node2 joined again", Duration::from_secs(60), || {
        assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());
        let now = ready_condition(&s, "node2");
        now.starts_with("True/") && now != heartbeat
    });
    assert_eq!(s.agent_log().matches("kone agent joined").count(), 2);
    assert!(agent_dir.join("client-kubelet.crt").exists());
}

#[test]
fn a_second_machine_cannot_take_a_node_name_until_the_node_is_deleted() {
    let s = Server::start_node_without_agent();
    let token = s.join_token();
    let mut first = s.spawn_agent("shared", &token);
    wait_until("shared Ready", Duration::from_secs(60), || {
        assert!(first.exited().is_none(), "agent exited:\n{}", s.agent_log());
        ready_condition(&s, "shared").starts_with("True/")
    });
    let secret = ["-n", "kube-system", "secret", "shared.node-password.kone"];
    let secret_type = |s: &Server| {
        get(
            s,
            &[
                "get",
                secret[0],
                secret[1],
                secret[2],
                secret[3],
                "-o",
                "jsonpath={.type}",
            ],
        )
    };
    assert_eq!(secret_type(&s), "kone.io/node-password");

    let other = s.dir.path().join("other");
    let other_log = || std::fs::read_to_string(other.join("agent.log")).unwrap_or_default();
    let mut second = s.spawn_other_agent("shared", &token, &other);
    wait_until(
        "the second agent to be refused",
        Duration::from_secs(30),
        || second.exited().is_some(),
    );
    assert!(!second.exited().unwrap().success());
    let log = other_log();
    assert!(
        log.contains("403 Forbidden")
            && log.contains(r#"node name "shared" is already taken by another node"#)
            && log.contains("kubectl delete node shared"),
        "{log}"
    );
    let password = |root: &Path| std::fs::read_to_string(root.join("agent/node-password")).unwrap();
    assert_eq!(mode(&other.join("data/agent/node-password")), 0o600);
    assert_ne!(password(&other.join("data")), password(&s.data_dir()));
    // The first keeps its node.
    std::thread::sleep(Duration::from_secs(1));
    assert!(first.exited().is_none(), "agent exited:\n{}", s.agent_log());
    assert!(ready_condition(&s, "shared").starts_with("True/"));

    // The first machine is gone for good: deleting its Node frees the name.
    drop(first);
    s.ok(&["delete", "node", "shared"]);
    wait_until(
        "the node's password secret to go",
        Duration::from_secs(30),
        || {
            let out = s.kubectl(&["get", secret[0], secret[1], secret[2], secret[3]]);
            text(&out.stderr).contains("NotFound")
        },
    );
    let mut third = s.spawn_other_agent("shared", &token, &other);
    wait_until(
        "shared Ready on the other machine",
        Duration::from_secs(60),
        || {
            assert!(third.exited().is_none(), "agent exited:\n{}", other_log());
            ready_condition(&s, "shared").starts_with("True/")
        },
    );
    assert_eq!(secret_type(&s), "kone.io/node-password");
}

#[test]
fn an_agent_cannot_take_the_servers_own_node_name() {
    let s = Server::start_node();
    wait_until("node1 Ready", Duration::from_secs(30), || {
        ready_condition(&s, "node1").starts_with("True/")
    });
    assert_eq!(
        get(
            &s,
            &[
                "get",
                "-n",
                "kube-system",
                "secret",
                "node1.node-password.kone",
                "-o",
                "jsonpath={.type}"
            ]
        ),
        "kone.io/node-password"
    );
    let other = s.dir.path().join("other");
    let mut agent = s.spawn_other_agent("node1", &s.join_token(), &other);
    wait_until("the agent to be refused", Duration::from_secs(30), || {
        agent.exited().is_some()
    });
    assert!(!agent.exited().unwrap().success());
    let log = std::fs::read_to_string(other.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains(r#"node name "node1" is already taken by another node"#),
        "{log}"
    );
    assert!(ready_condition(&s, "node1").starts_with("True/"));
}
