//! Core controllers of `kone server`: namespace defaults (default
//! ServiceAccount, kube-root-ca.crt), endpoints and node lifecycle.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get_json(s: &Server, args: &[&str]) -> Option<Value> {
    let out = s.kubectl(args);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let s = Server::start();
    let ca = std::fs::read_to_string(s.data_dir().join("server/tls/server-ca.crt")).expect("CA");
    s.ok(&["create", "namespace", "team-a"]);
    let sa = |s: &Server| {
        get_json(
            s,
            &[
                "get",
                "serviceaccount",
                "default",
                "-n",
                "team-a",
                "-o",
                "json",
            ],
        )
    };
    let cm = |s: &Server| {
        get_json(
            s,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                "team-a",
                "-o",
                "json",
            ],
        )
    };
    wait_for("default ServiceAccount", Duration::from_secs(20), || sa(&s));
    let got = wait_for("kube-root-ca.crt", Duration::from_secs(20), || cm(&s));
    assert_eq!(got["data"]["ca.crt"].as_str(), Some(ca.as_str()));
    // Also in the namespaces a fresh cluster has.
    for ns in ["default", "kube-system"] {
        wait_for(ns, Duration::from_secs(20), || {
            get_json(
                &s,
                &[
                    "get",
                    "configmap",
                    "kube-root-ca.crt",
                    "-n",
                    ns,
                    "-o",
                    "json",
                ],
            )
        });
    }
    // Deleted: put back. Changed: set right again.
    let old_uid = sa(&s).expect("sa")["metadata"]["uid"].clone();
    s.ok(&["delete", "serviceaccount", "default", "-n", "team-a"]);
    wait_for(
        "default ServiceAccount again",
        Duration::from_secs(20),
        || sa(&s).filter(|o| o["metadata"]["uid"] != old_uid),
    );
    s.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"bogus"}}"#,
    ]);
    wait_for("kube-root-ca.crt restored", Duration::from_secs(20), || {
        cm(&s).filter(|o| o["data"]["ca.crt"].as_str() == Some(ca.as_str()))
    });
}

/// Sets a pod's IP and Ready condition the way its kubelet would.
fn set_pod_status(s: &Server, pod: &str, ip: &str, ready: bool) {
    let status = format!(
        r#"{{"status": {{"phase": "Running", "podIP": "{ip}", "podIPs": [{{"ip": "{ip}"}}],
            "conditions": [{{"type": "Ready", "status": "{}"}}]}}}}"#,
        if ready { "True" } else { "False" }
    );
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

/// (ready addresses, not-ready addresses) of the Service's EndpointSlices.
fn slice_addresses(s: &Server, svc: &str) -> (Vec<String>, Vec<String>) {
    let v = get_json(
        s,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
            "-o",
            "json",
        ],
    )
    .unwrap_or_default();
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for slice in v["items"].as_array().into_iter().flatten() {
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            let ip = e["addresses"][0].as_str().unwrap_or("").to_string();
            if e["conditions"]["ready"] == true {
                ready.push(ip);
            } else {
                not_ready.push(ip);
            }
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

#[test]
fn endpoints_and_slices_follow_ready_pods() {
    let s = Server::start();
    let manifest = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: db}
  ports: [{port: 5432}]
"#;
    common::assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], manifest),
        "services",
    );
    for (name, app, host) in [
        ("web-1", "web", ""),
        ("web-2", "web", ""),
        ("db-0", "db", "db-0"),
    ] {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  nodeName: fake\n  hostname: \"{host}\"\n  subdomain: db\n  containers:\n  - name: c\n    image: kone.test/busybox:1\n    ports: [{{name: http, containerPort: 8080}}]\n"
        );
        common::assert_ok(&s.kubectl_stdin(None, &["apply", "-f", "-"], &pod), name);
    }
    set_pod_status(&s, "web-1", "10.42.0.11", true);
    set_pod_status(&s, "web-2", "10.42.0.12", false);
    set_pod_status(&s, "db-0", "10.42.0.20", false);
    wait_for("web slices", Duration::from_secs(20), || {
        (slice_addresses(&s, "web") == (vec!["10.42.0.11".into()], vec!["10.42.0.12".into()]))
            .then_some(())
    });
    let ep = get_json(&s, &["get", "endpoints", "web", "-o", "json"]).expect("endpoints");
    let subset = &ep["subsets"][0];
    assert_eq!(subset["addresses"][0]["ip"], "10.42.0.11");
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "web-1");
    assert_eq!(subset["notReadyAddresses"][0]["ip"], "10.42.0.12");
    // The named targetPort resolves to the container port.
    assert_eq!(subset["ports"][0]["port"], 8080);
    assert_eq!(subset["ports"][0]["name"], "http");

    // Readiness comes and goes.
    set_pod_status(&s, "web-2", "10.42.0.12", true);
    set_pod_status(&s, "web-1", "10.42.0.11", false);
    wait_for("web-2 ready, web-1 not", Duration::from_secs(20), || {
        (slice_addresses(&s, "web") == (vec!["10.42.0.12".into()], vec!["10.42.0.11".into()]))
            .then_some(())
    });

    // Headless and publishNotReadyAddresses: listed as ready, with hostname.
    wait_for("db endpoints", Duration::from_secs(20), || {
        let ep = get_json(&s, &["get", "endpoints", "db", "-o", "json"])?;
        let a = &ep["subsets"][0]["addresses"][0];
        (a["ip"] == "10.42.0.20" && a["hostname"] == "db-0").then_some(())
    });
    let slices = get_json(
        &s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=db",
            "-o",
            "json",
        ],
    )
    .expect("slices");
    assert_eq!(
        slices["items"][0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );

    // Deleting the pods empties them; deleting the Service removes its Endpoints.
    s.ok(&[
        "delete",
        "pod",
        "web-1",
        "web-2",
        "--grace-period=0",
        "--force",
    ]);
    wait_for("web empty", Duration::from_secs(20), || {
        (slice_addresses(&s, "web") == (vec![], vec![])).then_some(())
    });
    s.ok(&["delete", "service", "web"]);
    wait_for("web endpoints gone", Duration::from_secs(20), || {
        get_json(&s, &["get", "endpoints", "web", "-o", "json"])
            .is_none()
            .then_some(())
    });
}

fn now_micro() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn renew(s: &Server, node: &str) {
    let lease = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {node}, namespace: kube-node-lease}}\nspec: {{holderIdentity: {node}, leaseDurationSeconds: 40, renewTime: \"{}\"}}\n",
        now_micro()
    );
    common::assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], &lease),
        "lease",
    );
}

fn post_ready(s: &Server, node: &str) {
    let now = now_micro();
    let now = format!("{}Z", &now[..19]);
    let status = format!(
        r#"{{"status": {{"conditions": [{{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": "{now}", "lastTransitionTime": "{now}"}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=strategic",
        "-p",
        &status,
    ]);
}

fn taint_keys(s: &Server, node: &str) -> Vec<String> {
    let n = get_json(s, &["get", "node", node, "-o", "json"]).expect("node");
    let mut keys: Vec<String> = n["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap_or(""),
                t["effect"].as_str().unwrap_or("")
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_stale_lease_makes_the_node_unknown_and_tainted() {
    let s = Server::start_with_env(&[("KONE_NODE_MONITOR_GRACE_SECS", "4")]);
    common::assert_ok(
        &s.kubectl_stdin(
            None,
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Node\nmetadata: {name: fake}\n",
        ),
        "node",
    );
    renew(&s, "fake");
    post_ready(&s, "fake");
    // Renewed in time: stays Ready.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(1));
        renew(&s, "fake");
    }
    let n = get_json(&s, &["get", "node", "fake", "-o", "json"]).expect("node");
    assert_eq!(n["status"]["conditions"][0]["status"], "True", "{n}");
    assert!(taint_keys(&s, "fake").is_empty());
    // Not renewed: Unknown with upstream's message, then tainted.
    wait_for("Ready=Unknown", Duration::from_secs(30), || {
        let n = get_json(&s, &["get", "node", "fake", "-o", "json"])?;
        let c = n["status"]["conditions"][0].clone();
        (c["status"] == "Unknown").then_some(c)
    });
    let n = get_json(&s, &["get", "node", "fake", "-o", "json"]).expect("node");
    assert_eq!(
        n["status"]["conditions"][0]["message"],
        "Kubelet stopped posting node status."
    );
    assert_eq!(n["status"]["conditions"][0]["reason"], "NodeStatusUnknown");
    wait_for("unreachable taints", Duration::from_secs(30), || {
        (taint_keys(&s, "fake")
            == [
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
            ])
        .then_some(())
    });
    // Back: the kubelet renews and reports Ready; the taints go.
    renew(&s, "fake");
    post_ready(&s, "fake");
    wait_for("taints removed", Duration::from_secs(30), || {
        renew(&s, "fake");
        taint_keys(&s, "fake").is_empty().then_some(())
    });
}
