//! `kone agent` joined to a `kone server --disable-agent` with the join
//! token, both in the test's network namespace: the node registers Ready,
//! pods run on it with projected volumes and service account tokens that
//! the API accepts, and logs, exec and nodes/proxy reach its kubelet
//! through the server.

mod common;

use std::time::Duration;

use common::{kubectl_path, text, wait_until, Server};
use serde_json::Value;

/// kubectl in the server's netns with a kubeconfig holding only `token`
/// and the CA `ca_pem`: what a pod using its mounted credentials does.
fn kubectl_with_token(
    s: &Server,
    ca_pem: &str,
    token: &str,
    args: &[&str],
) -> std::process::Output {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let path = s.dir.path().join(format!("token-{}.yaml", rand_suffix()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{}\", certificate-authority-data: {b64}}}\nusers:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            s.port
        ),
    )
    .expect("write kubeconfig");
    s.in_netns(kubectl_path(None))
        .env("KUBECONFIG", &path)
        .env("HOME", s.dir.path())
        .args(args)
        .output()
        .expect("kubectl")
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

#[test]
fn bad_tokens_do_not_join() {
    let s = Server::start_node_without_agent();
    let token = s.join_token();
    let (pinned, _) = token.rsplit_once(':').expect("full token");
    let secret = token.rsplit(':').next().unwrap();
    let wrong_ca = format!("K10{}::server:{secret}", "0".repeat(64));
    for (bad, says) in [
        (format!("{pinned}:wrong"), "the join token is not valid"),
        (wrong_ca, "refusing to trust it"),
    ] {
        let mut agent = s.spawn_agent("intruder", &bad);
        wait_until("the agent to give up", Duration::from_secs(30), || {
            agent.exited().is_some()
        });
        assert!(!agent.exited().unwrap().success());
        assert!(s.agent_log().contains(says), "{}", s.agent_log());
    }
    assert!(!s.kubectl(&["get", "node", "intruder"]).status.success());
}

#[test]
fn agent_joins_and_runs_pods_reached_through_the_server() {
    let s = Server::start_node_without_agent();
    let mut agent = s.spawn_agent("node2", &s.join_token());
    wait_until("node2 Ready", Duration::from_secs(60), || {
        assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());
        let out = s.kubectl(&[
            "get",
            "node",
            "node2",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        text(&out.stdout) == "True"
    });
    let node: Value =
        serde_json::from_str(&s.ok(&["get", "node", "node2", "-o", "json"])).expect("node");
    assert_eq!(node["spec"]["podCIDR"], "10.42.0.0/24");
    assert!(node["metadata"]["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
    let kubeconfig = std::fs::read_to_string(s.data_dir().join("agent/kubelet.kubeconfig"))
        .expect("the agent's kubeconfig");
    assert!(kubeconfig.contains("client-certificate-data"));

    // nodes/proxy reaches the kubelet.
    assert_eq!(
        s.ok(&["get", "--raw", "/api/v1/nodes/node2/proxy/healthz"]),
        "ok"
    );
    let out = s.kubectl(&["get", "--raw", "/api/v1/nodes/ghost/proxy/healthz"]);
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );

    let manifest = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: two, labels: {app: demo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: kone.test/busybox:1
    command: ["sh", "-c", "echo from-a; exec sleep 3600"]
    volumeMounts: [{name: all, mountPath: /projected}]
  - name: b
    image: kone.test/busybox:1
    command: ["sh", "-c", "echo from-b; exec sleep 3600"]
  volumes:
  - name: all
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: creds, items: [{key: password, path: secret/pw}]}
      - downwardAPI: {items: [{path: podname, fieldRef: {fieldPath: metadata.name}}]}
      - serviceAccountToken: {audience: vault, expirationSeconds: 600, path: vault-token}
"#;
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    common::assert_ok(&out, "apply");
    wait_until("pod two Running", Duration::from_secs(90), || {
        let out = s.kubectl(&[
            "get",
            "pod",
            "two",
            "-o",
            "jsonpath={.spec.nodeName}/{.status.phase}",
        ]);
        text(&out.stdout) == "node2/Running"
    });

    // Streams go through the server to the agent's kubelet.
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", "two", "-c", "a", "--"];
        all.extend_from_slice(args);
        s.kubectl(&all)
    };
    assert_eq!(exec(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    let cat = |path: &str| {
        let out = exec(&["cat", path]);
        common::assert_ok(&out, path);
        text(&out.stdout)
    };
    assert_eq!(cat("/projected/mode"), "fast");
    assert_eq!(cat("/projected/secret/pw"), "hunter2");
    assert_eq!(cat("/projected/podname"), "two");
    assert_eq!(cat("/projected/vault-token").split('.').count(), 3);

    let logs = |args: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        s.kubectl(&all)
    };
    wait_until("both containers logged", Duration::from_secs(20), || {
        text(&logs(&["two", "--all-containers"]).stdout) == "from-a\nfrom-b\n"
    });
    assert_eq!(text(&logs(&["two", "-c", "b"]).stdout), "from-b\n");
    let out = logs(&[
        "-l",
        "app=demo",
        "--all-containers",
        "--max-log-requests=2",
        "--prefix",
    ]);
    common::assert_ok(&out, "logs -l");
    assert!(
        text(&out.stdout).contains("[pod/two/a] from-a"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("[pod/two/b] from-b"),
        "{}",
        text(&out.stdout)
    );
    let out = logs(&[
        "-f",
        "-l",
        "app=demo",
        "--all-containers",
        "--max-log-requests=1",
    ]);
    assert!(
        text(&out.stderr).contains("maximum allowed concurrency is 1"),
        "{}",
        text(&out.stderr)
    );

    // nodes/proxy/pods lists what runs on the node.
    let pods: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1/nodes/node2/proxy/pods"]))
            .expect("pod list");
    assert_eq!(pods["kind"], "PodList");
    assert!(pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == "two"));
    let summary: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1/nodes/node2/proxy/stats/summary"]))
            .expect("summary");
    assert_eq!(summary["node"]["nodeName"], "node2");
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["podRef"]["name"] == "two"));

    // The default service account mount works against the API server; the
    // vault token does not (wrong audience).
    let sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(cat(&format!("{sa_dir}/namespace")), "default");
    let ca = cat(&format!("{sa_dir}/ca.crt"));
    let server_ca = std::fs::read_to_string(s.data_dir().join("server/tls/server-ca.crt")).unwrap();
    assert_eq!(ca, server_ca);
    let token = cat(&format!("{sa_dir}/token"));
    let out = kubectl_with_token(&s, &ca, &token, &["get", "pod", "two", "-o", "name"]);
    common::assert_ok(&out, "the pod's token");
    assert_eq!(text(&out.stdout), "pod/two\n");
    let vault = cat("/projected/vault-token");
    let out = kubectl_with_token(&s, &ca, &vault, &["get", "pods"]);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        text(&out.stderr)
    );

    // The pod's token is bound to the pod: gone with it.
    s.ok(&["delete", "pod", "two", "--wait=true"]);
    let out = kubectl_with_token(&s, &ca, &token, &["get", "pods"]);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        text(&out.stderr)
    );
    assert!(agent.exited().is_none(), "agent exited:\n{}", s.agent_log());
}
