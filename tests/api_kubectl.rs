//! The real kubectl (1.33 and 1.27) against a real `kone server`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{assert_ok, wait_until, Server};

const VERSIONS: [&str; 2] = ["1.33", "1.27"];

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  labels: {app: demo}
type: Opaque
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: demo}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: demo}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "8080"]
        resources:
          limits: {cpu: 1, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: demo}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn namespaces_and_discovery() {
    let s = Server::start();
    for v in VERSIONS {
        let out = s.kubectl_v(Some(v), &["get", "ns", "-o", "name"]);
        assert_ok(&out, ("get ns", v));
        let text = stdout(&out);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(
                text.contains(&format!("namespace/{ns}")),
                "kubectl {v}: {ns} missing in {text}"
            );
        }
        let out = s.kubectl_v(Some(v), &["api-versions"]);
        assert_ok(&out, ("api-versions", v));
        let text = stdout(&out);
        for gv in [
            "v1",
            "apps/v1",
            "batch/v1",
            "networking.k8s.io/v1",
            "discovery.k8s.io/v1",
            "coordination.k8s.io/v1",
            "rbac.authorization.k8s.io/v1",
            "policy/v1",
            "storage.k8s.io/v1",
            "scheduling.k8s.io/v1",
            "events.k8s.io/v1",
            "autoscaling/v1",
            "autoscaling/v2",
            "certificates.k8s.io/v1",
            "apiextensions.k8s.io/v1",
            "admissionregistration.k8s.io/v1",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == gv),
                "kubectl {v}: {gv} missing in {text}"
            );
        }
        let out = s.kubectl_v(Some(v), &["api-resources"]);
        assert_ok(&out, ("api-resources", v));
        let text = stdout(&out);
        for (name, short) in [
            ("pods", "po"),
            ("services", "svc"),
            ("deployments", "deploy"),
            ("configmaps", "cm"),
            ("namespaces", "ns"),
        ] {
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == [name, short]),
                "kubectl {v}: {name} ({short}) missing in {text}"
            );
        }
    }
}

#[test]
fn create_get_delete_with_both_kubectl_versions() {
    let s = Server::start();
    for v in VERSIONS {
        let ns = format!("crud-{}", v.replace('.', "-"));
        assert_ok(
            &s.kubectl_v(Some(v), &["create", "namespace", &ns]),
            "create ns",
        );
        let out = s.kubectl_stdin(Some(v), &["create", "-n", &ns, "-f", "-"], MANIFESTS);
        assert_ok(&out, ("create -f", v));
        let text = stdout(&out);
        for what in [
            "configmap/settings created",
            "secret/creds created",
            "service/web created",
            "deployment.apps/web created",
            "pod/solo created",
        ] {
            assert!(text.contains(what), "kubectl {v}: {what:?} not in {text}");
        }

        let yaml =
            stdout(&s.kubectl_v(Some(v), &["get", "-n", &ns, "cm", "settings", "-o", "yaml"]));
        assert!(
            yaml.contains("color: blue")
                && yaml.contains("resourceVersion:")
                && yaml.contains("uid:"),
            "{yaml}"
        );
        let json: serde_json::Value = serde_json::from_slice(
            &s.kubectl_v(Some(v), &["get", "-n", &ns, "deploy", "web", "-o", "json"])
                .stdout,
        )
        .expect("json");
        assert_eq!(json["spec"]["replicas"], 2);
        assert_eq!(json["metadata"]["generation"], 1);
        assert_eq!(
            json["spec"]["strategy"]["type"], "RollingUpdate",
            "defaults applied: {json}"
        );
        assert_eq!(
            json["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        let ip = stdout(&s.kubectl_v(
            Some(v),
            &[
                "get",
                "-n",
                &ns,
                "svc",
                "web",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ],
        ));
        assert!(ip.starts_with("10.43."), "cluster IP {ip:?}");
        let pod: serde_json::Value = serde_json::from_slice(
            &s.kubectl_v(Some(v), &["get", "-n", &ns, "pod", "solo", "-o", "json"])
                .stdout,
        )
        .expect("json");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        let names = stdout(&s.kubectl_v(
            Some(v),
            &[
                "get",
                "-n",
                &ns,
                "cm,secret,svc,deploy,pod",
                "-l",
                "app=demo",
                "-o",
                "name",
            ],
        ));
        for n in [
            "configmap/settings",
            "secret/creds",
            "service/web",
            "deployment.apps/web",
            "pod/solo",
        ] {
            assert!(names.contains(n), "kubectl {v}: {n} not in {names}");
        }
        let secret = stdout(&s.kubectl_v(
            Some(v),
            &[
                "get",
                "-n",
                &ns,
                "secret",
                "creds",
                "-o",
                "jsonpath={.data.password}",
            ],
        ));
        assert_eq!(secret, "aHVudGVyMg==", "stringData is folded into data");

        let out = s.kubectl_stdin(Some(v), &["delete", "-n", &ns, "-f", "-"], MANIFESTS);
        assert_ok(&out, ("delete -f", v));
        let left = stdout(&s.kubectl_v(
            Some(v),
            &[
                "get",
                "-n",
                &ns,
                "cm,secret,svc,deploy,pod",
                "-l",
                "app=demo",
                "-o",
                "name",
            ],
        ));
        assert!(
            left.trim().is_empty(),
            "kubectl {v}: left after delete: {left}"
        );
    }
}

#[test]
fn imperative_commands_and_selectors() {
    let s = Server::start();
    s.ok(&[
        "create",
        "configmap",
        "x",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.ok(&["create", "namespace", "other"]);
    s.ok(&[
        "create",
        "configmap",
        "y",
        "-n",
        "other",
        "--from-literal=c=3",
    ]);
    assert_eq!(s.ok(&["get", "cm", "x", "-o", "jsonpath={.data.b}"]), "2");
    s.ok(&["label", "cm", "x", "tier=backend"]);
    s.ok(&["annotate", "cm", "x", "owner=team-a"]);
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "x",
            "-o",
            "jsonpath={.metadata.annotations.owner}"
        ]),
        "team-a"
    );
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier=backend", "-o", "name"])
            .trim(),
        "configmap/x"
    );
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier in (frontend)", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=x",
            "-o",
            "name"
        ])
        .trim(),
        "configmap/x"
    );
    let all = s.ok(&["get", "cm", "-A", "-o", "name"]);
    assert!(
        all.contains("configmap/x") && all.contains("configmap/y"),
        "{all}"
    );
    s.ok(&["label", "cm", "x", "tier-"]);
    assert_eq!(s.ok(&["get", "cm", "-l", "tier", "-o", "name"]).trim(), "");
    let table = s.ok(&["get", "cm", "x"]);
    assert!(table.starts_with("NAME"), "table output: {table}");
}

#[test]
fn get_watch_prints_changes_from_another_client() {
    let s = Server::start();
    s.ok(&["create", "configmap", "watched", "--from-literal=v=0"]);
    let mut child = s
        .kubectl_cmd(Some("1.33"))
        .args(["get", "cm", "-w", "--output-watch-events", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Rows are EVENT NAME AGE.
    // The root CA publisher's kube-root-ca.crt lives in every namespace.
    let next = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line for {what}"));
        let row = line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        if !row.ends_with(" kube-root-ca.crt") {
            break row;
        }
    };
    assert_eq!(next("initial"), "ADDED watched");
    s.ok(&["create", "configmap", "born", "--from-literal=v=1"]);
    assert_eq!(next("create"), "ADDED born");
    s.ok(&["label", "cm", "watched", "x=y"]);
    assert_eq!(next("label"), "MODIFIED watched");
    s.ok(&["delete", "cm", "born"]);
    assert_eq!(next("delete"), "DELETED born");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn deleting_a_namespace_empties_and_removes_it() {
    let s = Server::start();
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&[
        "create",
        "configmap",
        "a",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "b",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ]);
    s.ok(&[
        "create",
        "service",
        "clusterip",
        "c",
        "-n",
        "doomed",
        "--tcp=80:80",
    ]);
    let out = s.kubectl(&["delete", "namespace", "doomed", "--timeout=30s"]);
    assert_ok(&out, "delete ns");
    wait_until("namespace gone", Duration::from_secs(15), || {
        !s.kubectl(&["get", "namespace", "doomed"]).status.success()
    });
    let left = s.ok(&["get", "cm,secret,svc", "-n", "doomed", "-o", "name"]);
    assert!(left.trim().is_empty(), "content left: {left}");
    // The name is free again.
    s.ok(&["create", "namespace", "doomed"]);
}

#[test]
fn kone_kubectl_uses_the_admin_kubeconfig() {
    let s = Server::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kone"))
        .args(["kubectl", "get", "ns", "kube-system", "-o", "name"])
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .expect("kone kubectl");
    assert_ok(&out, "kone kubectl get ns");
    assert_eq!(stdout(&out).trim(), "namespace/kube-system");

    let missing = s.dir.path().join("no-such-kubeconfig.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kone"))
        .args(["kubectl", "get", "ns"])
        .env("KUBECONFIG", &missing)
        .output()
        .expect("kone kubectl");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("no kubeconfig"), "{err}");
}
