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

fn add_node(s: &Server, name: &str) {
    let node = format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n");
    common::assert_ok(&s.kubectl_stdin(None, &["apply", "-f", "-"], &node), name);
}

#[test]
fn a_stale_lease_makes_the_node_unknown_and_tainted() {
    let s = Server::start_with_env(&[("KONE_NODE_MONITOR_GRACE_SECS", "4")]);
    add_node(&s, "fake");
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

fn deleting(s: &Server, pod: &str) -> bool {
    get_json(s, &["get", "pod", pod, "-o", "json"])
        .is_none_or(|p| !p["metadata"]["deletionTimestamp"].is_null())
}

/// A pod bound to `node` directly (no kubelet runs it) with these tolerations.
fn bound_pod(s: &Server, name: &str, node: &str, tolerations: &str) {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  tolerations: {tolerations}\n  containers: [{{name: c, image: kone.test/busybox:1}}]\n"
    );
    common::assert_ok(&s.kubectl_stdin(None, &["apply", "-f", "-"], &pod), name);
}

#[test]
fn no_execute_taints_evict_pods_that_do_not_tolerate_them() {
    let s = Server::start_with_env(&[("KONE_NODE_MONITOR_GRACE_SECS", "3")]);
    add_node(&s, "fake");
    renew(&s, "fake");
    post_ready(&s, "fake");
    bound_pod(
        &s,
        "forever",
        "fake",
        "[{operator: Exists, effect: NoExecute}]",
    );
    bound_pod(
        &s,
        "brief",
        "fake",
        "[{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 6}]",
    );
    bound_pod(&s, "plain", "fake", "[]");
    // The Lease goes stale: unreachable taints; "brief" has 6 s from then.
    wait_for(
        "unreachable NoExecute taint",
        Duration::from_secs(30),
        || {
            taint_keys(&s, "fake")
                .contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
                .then_some(())
        },
    );
    let tainted = Instant::now();
    assert!(
        !deleting(&s, "brief"),
        "evicted before its tolerationSeconds"
    );
    wait_for("brief evicted", Duration::from_secs(30), || {
        deleting(&s, "brief").then_some(())
    });
    assert!(
        tainted.elapsed() >= Duration::from_secs(4),
        "evicted after {:?}",
        tainted.elapsed()
    );
    let brief = get_json(&s, &["get", "pod", "brief", "-o", "json"]).expect("brief");
    let target = brief["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(target["reason"], "DeletionByTaintManager", "{brief}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=brief,reason=TaintManagerEviction",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no TaintManagerEviction event");
    // A taint nobody tolerates for a while evicts at once; a pod that
    // tolerates every NoExecute taint stays through all of it.
    s.ok(&["taint", "node", "fake", "dedicated=x:NoExecute"]);
    wait_for("plain evicted", Duration::from_secs(10), || {
        deleting(&s, "plain").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!deleting(&s, "forever"), "a tolerating pod was evicted");
}

fn pod_cidrs(s: &Server, node: &str) -> Option<(String, Value)> {
    let n = get_json(s, &["get", "node", node, "-o", "json"])?;
    let cidr = n["spec"]["podCIDR"].as_str()?.to_string();
    Some((cidr, n["spec"]["podCIDRs"].clone()))
}

#[test]
fn nodes_get_pod_cidrs_that_outlive_restarts() {
    let mut s = Server::start_with_env(&[("KONE_NODE_MONITOR_GRACE_SECS", "3")]);
    add_node(&s, "a");
    let (a, a_list) = wait_for("a's podCIDR", Duration::from_secs(20), || {
        pod_cidrs(&s, "a")
    });
    assert_eq!(a, "10.42.0.0/24");
    assert_eq!(a_list, serde_json::json!(["10.42.0.0/24"]));
    add_node(&s, "b");
    let (b, _) = wait_for("b's podCIDR", Duration::from_secs(20), || {
        pod_cidrs(&s, "b")
    });
    assert_eq!(b, "10.42.1.0/24");
    // A node that never posted status: its kubelet's four conditions Unknown.
    let conditions = wait_for("never-updated conditions", Duration::from_secs(30), || {
        let n = get_json(&s, &["get", "node", "a", "-o", "json"])?;
        let c = n["status"]["conditions"].as_array()?.clone();
        (c.len() == 4).then_some(c)
    });
    for c in &conditions {
        assert_eq!(c["status"], "Unknown", "{c}");
        assert_eq!(c["reason"], "NodeStatusNeverUpdated", "{c}");
        assert_eq!(c["message"], "Kubelet never posted node status.", "{c}");
    }
    let mut types: Vec<&str> = conditions
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["DiskPressure", "MemoryPressure", "PIDPressure", "Ready"]
    );
    // Deleting a node frees its range for the next one.
    s.ok(&["delete", "node", "a"]);
    std::thread::sleep(Duration::from_secs(1));
    add_node(&s, "c");
    let (c, _) = wait_for("c's podCIDR", Duration::from_secs(20), || {
        pod_cidrs(&s, "c")
    });
    assert_eq!(c, "10.42.0.0/24");
    // After a restart the ranges held are known: the next one is new.
    s.restart();
    add_node(&s, "d");
    let (d, _) = wait_for("d's podCIDR", Duration::from_secs(30), || {
        pod_cidrs(&s, "d")
    });
    assert_eq!(d, "10.42.2.0/24");
}

fn lease(s: &Server, name: &str) -> Option<Value> {
    get_json(
        s,
        &["get", "lease", "-n", "kube-system", name, "-o", "json"],
    )
}

#[test]
fn controllers_and_scheduler_run_only_while_holding_their_leases() {
    let s = Server::start();
    let mut renewed = Vec::new();
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let l = wait_for(name, Duration::from_secs(20), || lease(&s, name));
        let holder = l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(!holder.is_empty(), "{l}");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 15, "{l}");
        renewed.push((name, holder, l["spec"]["renewTime"].clone()));
    }
    std::thread::sleep(Duration::from_secs(3));
    for (name, holder, before) in &renewed {
        let l = lease(&s, name).expect("lease");
        assert_eq!(l["spec"]["holderIdentity"], holder.as_str());
        assert_ne!(&l["spec"]["renewTime"], before, "{name} not renewed");
    }
    // Someone else takes the controller manager's Lease: our controllers
    // stop, and start again only once that holder's Lease has expired.
    let intruder = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: kube-controller-manager, namespace: kube-system}}\nspec: {{holderIdentity: intruder, leaseDurationSeconds: 15, renewTime: \"{}\"}}\n",
        now_micro()
    );
    common::assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], &intruder),
        "lease",
    );
    let taken = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    s.ok(&["create", "deployment", "web", "--image=kone.test/busybox:1"]);
    let replicasets = |s: &Server| {
        get_json(s, &["get", "replicasets", "-o", "json"])
            .and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    while taken.elapsed() < Duration::from_secs(12) {
        assert_eq!(replicasets(&s), 0, "a controller ran without the Lease");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for("controllers back", Duration::from_secs(30), || {
        (replicasets(&s) == 1).then_some(())
    });
    let l = lease(&s, "kube-controller-manager").expect("lease");
    assert_eq!(l["spec"]["holderIdentity"], renewed[0].1.as_str(), "{l}");
    assert!(
        l["spec"]["leaseTransitions"].as_i64().unwrap_or(0) >= 1,
        "{l}"
    );
}

#[test]
fn the_kubernetes_service_points_at_the_server() {
    let s = Server::start();
    let port = s.url().rsplit(':').next().unwrap_or("").to_string();
    let ep = get_json(&s, &["get", "endpoints", "kubernetes", "-o", "json"]).expect("endpoints");
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1", "{ep}");
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "https", "{ep}");
    assert_eq!(
        ep["subsets"][0]["ports"][0]["port"].to_string(),
        port,
        "{ep}"
    );
    let slice = get_json(&s, &["get", "endpointslice", "kubernetes", "-o", "json"]).expect("slice");
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["endpoints"][0]["addresses"][0], "127.0.0.1",
        "{slice}"
    );
    assert_eq!(
        slice["endpoints"][0]["conditions"]["ready"], true,
        "{slice}"
    );
    assert_eq!(slice["ports"][0]["name"], "https", "{slice}");
    assert_eq!(slice["ports"][0]["port"].to_string(), port, "{slice}");
}
