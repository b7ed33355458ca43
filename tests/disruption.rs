//! PodDisruptionBudgets, the eviction subresource and `kubectl drain`, on
//! API-only servers: pods of a Deployment land on fake Nodes (no kubelet),
//! and the test plays the kubelet by marking them Running and Ready. The
//! pods have terminationGracePeriodSeconds 0, so a delete removes them at
//! once instead of waiting for a kubelet that does not exist.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_ok, Server, TEST_TOKEN};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// Fake nodes never renew a Lease; keep the lifecycle controller from
/// tainting them during the test.
fn server() -> Server {
    Server::start_with_env(&[("KONE_NODE_MONITOR_GRACE_SECS", "3600")])
}

async fn add_node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/hostname": name}}}))
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let status = json!({"status": {
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

fn deployment(s: &Server, name: &str, replicas: u32) {
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers: [{{name: c, image: kone.test/busybox:1}}]\n"
    );
    assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], &manifest),
        "deployment",
    );
}

fn budget(s: &Server, name: &str, app: &str, min_available: &str) {
    let manifest = format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: {name}}}\nspec:\n  minAvailable: {min_available}\n  selector: {{matchLabels: {{app: {app}}}}}\n"
    );
    assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], &manifest),
        "pdb",
    );
}

async fn app_pods(client: &kube::Client, app: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Plays the kubelet: every pod of the app bound to `node` becomes
/// Running and Ready. Returns how many pods were bound there.
async fn run_pods_on(client: &kube::Client, app: &str, node: &str) -> usize {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut bound = 0;
    for p in app_pods(client, app).await {
        if node_of(&p) != node || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        bound += 1;
        if is_ready(&p) {
            continue;
        }
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"}]}});
        let name = p.metadata.name.clone().unwrap_or_default();
        // A pod evicted meanwhile is fine: the next round sees its successor.
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
    bound
}

async fn wait_running(client: &kube::Client, app: &str, node: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if run_pods_on(client, app, node).await == want {
            let ready = app_pods(client, app)
                .await
                .iter()
                .filter(|p| node_of(p) == node && is_ready(p))
                .count();
            if ready == want {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{want} {app} pods running on {node}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the budget's status satisfies `f`; returns it.
async fn wait_budget(client: &kube::Client, name: &str, f: impl Fn(&Value) -> bool) -> Value {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pdb = serde_json::to_value(api.get(name).await.expect("get pdb")).expect("json");
        let current = pdb["status"]["observedGeneration"] == pdb["metadata"]["generation"];
        if current && f(&pdb["status"]) {
            return pdb;
        }
        assert!(
            Instant::now() < deadline,
            "budget {name} never settled: {}",
            pdb["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// POSTs an Eviction; the status code and the returned body.
async fn evict(s: &Server, pod: &str, body_name: &str) -> (u16, Value) {
    let url = format!("{}/api/v1/namespaces/default/pods/{pod}/eviction", s.url());
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": body_name, "namespace": "default"}});
    let resp = s
        .http()
        .post(url)
        .bearer_auth(TEST_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("eviction request");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// A server with two Ready pods of Deployment `web` on fake node n1, under
/// budget `web-pdb` with minAvailable 2.
async fn guarded_pair() -> (Server, kube::Client) {
    let s = server();
    let client = s.client().await;
    add_node(&client, "n1").await;
    deployment(&s, "web", 2);
    wait_running(&client, "web", "n1", 2).await;
    budget(&s, "web-pdb", "web", "2");
    (s, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn eviction_spends_the_budget() {
    let (s, client) = guarded_pair().await;
    let pdb = wait_budget(&client, "web-pdb", |st| {
        st["currentHealthy"] == 2 && st["desiredHealthy"] == 2 && st["expectedPods"] == 2
    })
    .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "{pdb}");
    let cond = &pdb["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        ),
        "{pdb}"
    );

    let pods = app_pods(&client, "web").await;
    let first = pods[0].metadata.name.clone().unwrap_or_default();
    let second = pods[1].metadata.name.clone().unwrap_or_default();
    let (code, status) = evict(&s, &first, &first).await;
    assert_eq!(code, 429, "{status}");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "DisruptionBudget",
            "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"})
    );
    let (code, status) = evict(&s, "missing", "missing").await;
    assert_eq!(
        (code, &status["reason"]),
        (404, &json!("NotFound")),
        "{status}"
    );
    let (code, status) = evict(&s, &first, "other").await;
    assert_eq!(
        (code, &status["reason"]),
        (400, &json!("BadRequest")),
        "{status}"
    );

    budget(&s, "web-pdb", "web", "1");
    wait_budget(&client, "web-pdb", |st| st["disruptionsAllowed"] == 1).await;
    let (code, status) = evict(&s, &first, &first).await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["status"], "Success");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert!(pods.get_opt(&first).await.expect("get").is_none());
    // The successor is Pending (nothing runs it): one healthy pod is all
    // the budget may keep, so the second pod stays.
    wait_budget(&client, "web-pdb", |st| {
        st["currentHealthy"] == 1
            && st["disruptionsAllowed"] == 0
            && st
                .get("disruptedPods")
                .is_none_or(|d| d.as_object().is_none_or(|m| m.is_empty()))
    })
    .await;
    let (code, status) = evict(&s, &second, &second).await;
    assert_eq!(code, 429, "{status}");
    // Pending pods are evicted whatever the budget says.
    let pending = app_pods(&client, "web")
        .await
        .into_iter()
        .find(|p| !is_ready(p))
        .and_then(|p| p.metadata.name)
        .expect("a pending successor");
    let (code, status) = evict(&s, &pending, &pending).await;
    assert_eq!(code, 201, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_respects_the_budget_and_uncordon_lets_pods_back() {
    let (s, client) = guarded_pair().await;
    wait_budget(&client, "web-pdb", |st| st["currentHealthy"] == 2).await;

    let blocked = s.kubectl(&[
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=8s",
    ]);
    assert!(
        !blocked.status.success(),
        "drain must not get past the budget"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&blocked.stdout),
        String::from_utf8_lossy(&blocked.stderr)
    );
    assert!(
        said.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{said}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let n1 = nodes.get("n1").await.expect("n1");
    assert_eq!(n1.spec.and_then(|s| s.unschedulable), Some(true));
    assert_eq!(run_pods_on(&client, "web", "n1").await, 2);

    // With one pod to spare and somewhere to go, drain proceeds pod by pod.
    budget(&s, "web-pdb", "web", "1");
    add_node(&client, "n2").await;
    let mut drain = s.kubectl_cmd(None);
    drain
        .args([
            "drain",
            "n1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=90s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = drain.spawn().expect("kubectl drain");
    let deadline = Instant::now() + Duration::from_secs(100);
    let finished = loop {
        run_pods_on(&client, "web", "n2").await;
        let ready = app_pods(&client, "web")
            .await
            .iter()
            .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .count();
        assert!(ready >= 1, "the budget keeps one pod ready at every moment");
        if let Some(status) = child.try_wait().expect("wait drain") {
            break status;
        }
        assert!(Instant::now() < deadline, "drain did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let out = child.wait_with_output().expect("drain output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(finished.success(), "drain failed: {said}");
    assert!(said.contains("node/n1 drained"), "{said}");
    assert!(said.contains("evicting pod default/web-"), "{said}");
    let pods = app_pods(&client, "web").await;
    assert!(
        pods.iter().all(|p| node_of(p) == "n2"),
        "every pod left n1: {:?}",
        pods.iter().map(node_of).collect::<Vec<_>>()
    );

    s.ok(&["uncordon", "n1"]);
    let n1 = nodes.get("n1").await.expect("n1");
    assert_ne!(n1.spec.and_then(|s| s.unschedulable), Some(true));
    // Back in the pool: a new pod can be placed on it again.
    s.ok(&["cordon", "n2"]);
    s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_running(&client, "web", "n1", 1).await;
}
