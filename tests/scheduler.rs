//! default-scheduler: pods without a node get bound through pods/binding,
//! or stay Pending with upstream's FailedScheduling reasons. Scheduling-only
//! cases use API-only servers with fake Node objects.

mod common;

use std::time::{Duration, Instant};

use common::{assert_ok, Server};
use serde_json::Value;

fn json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&s.ok(args)).expect("kubectl json")
}

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    assert_ok(&out, manifest);
}

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

fn node_of(s: &Server, pod: &str) -> String {
    json(s, &["get", "pod", pod, "-o", "json"])["spec"]["nodeName"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_bound(s: &Server, pod: &str) -> String {
    wait_for(&format!("{pod} bound"), Duration::from_secs(30), || {
        Some(node_of(s, pod)).filter(|n| !n.is_empty())
    })
}

/// The message of the pod's latest FailedScheduling event.
fn wait_failed_scheduling(s: &Server, pod: &str) -> String {
    wait_for(
        &format!("FailedScheduling for {pod}"),
        Duration::from_secs(30),
        || {
            let events = json(
                s,
                &[
                    "get",
                    "events",
                    "--field-selector",
                    &format!("involvedObject.name={pod},reason=FailedScheduling"),
                    "-o",
                    "json",
                ],
            );
            events["items"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["message"].as_str())
                .map(str::to_string)
        },
    )
}

/// A fake node with this much room (and the labels and taints given).
fn fake_node(s: &Server, name: &str, cpu: &str, extra_spec: &str, labels: &str) {
    apply(
        s,
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}{labels}}}\nspec: {{{extra_spec}}}\n"
        ),
    );
    let status = format!(
        r#"{{"status": {{"capacity": {{"cpu": "{cpu}", "memory": "4Gi", "pods": "110"}}, "allocatable": {{"cpu": "{cpu}", "memory": "4Gi", "pods": "110"}},
            "conditions": [{{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

fn pod_manifest(name: &str, cpu: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  containers:\n  - name: c\n    image: kone.test/busybox:1\n    resources: {{requests: {{cpu: \"{cpu}\"}}}}\n{extra_spec}"
    )
}

#[test]
fn kubectl_run_pods_are_scheduled_and_run() {
    let s = Server::start_node();
    for (version, name) in [(Some("1.33"), "web"), (Some("1.27"), "old")] {
        let out = s.kubectl_v(
            version,
            &[
                "run",
                name,
                "--image=kone.test/busybox:1",
                "--command",
                "--",
                "sleep",
                "3600",
            ],
        );
        assert_ok(&out, ("kubectl run", version));
    }
    for name in ["web", "old"] {
        assert_eq!(wait_bound(&s, name), "node1");
        wait_for(&format!("{name} Running"), Duration::from_secs(90), || {
            let p = json(&s, &["get", "pod", name, "-o", "json"]);
            (p["status"]["phase"] == "Running").then_some(())
        });
        let p = json(&s, &["get", "pod", name, "-o", "json"]);
        let scheduled = p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(scheduled["status"], "True", "{scheduled}");
    }
    let events = s.ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    assert!(
        events.contains("Successfully assigned default/web to node1"),
        "{events}"
    );
    let describe = s.ok(&["describe", "pod", "old"]);
    assert!(
        describe.contains("default-scheduler  Successfully assigned default/old to node1"),
        "{describe}"
    );
}

#[test]
fn binding_twice_is_a_conflict() {
    let s = Server::start();
    fake_node(&s, "n1", "4", "", "");
    apply(
        &s,
        &pod_manifest("p", "100m", "  schedulerName: someone-else\n"),
    );
    // Another scheduler's pod is left alone.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node_of(&s, "p"), "");
    let binding = r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}"#;
    let path = "/api/v1/namespaces/default/pods/p/binding";
    let out = s.kubectl_stdin(None, &["create", "--raw", path, "-f", "-"], binding);
    assert_ok(&out, "first binding");
    assert_eq!(node_of(&s, "p"), "n1");
    let out = s.kubectl_stdin(None, &["create", "--raw", path, "-f", "-"], binding);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pod p is already assigned to node \"n1\""),
        "{err}"
    );
}

#[test]
fn unschedulable_pods_say_why() {
    let s = Server::start();
    fake_node(&s, "n1", "2", "", "");
    apply(&s, &pod_manifest("big", "3", ""));
    let msg = wait_failed_scheduling(&s, "big");
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    let p = json(&s, &["get", "pod", "big", "-o", "json"]);
    assert_eq!(p["status"]["phase"], "Pending");
    let describe = s.ok(&["describe", "pod", "big"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains("Insufficient cpu"), "{describe}");
    wait_for("PodScheduled=False", Duration::from_secs(30), || {
        let p = json(&s, &["get", "pod", "big", "-o", "json"]);
        let c = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (c["status"] == "False" && c["reason"] == "Unschedulable").then_some(())
    });
    // A bigger node arriving lets it schedule.
    fake_node(&s, "n2", "8", "", "");
    assert_eq!(wait_bound(&s, "big"), "n2");
}

#[test]
fn taints_keep_pods_off_unless_tolerated() {
    let s = Server::start();
    fake_node(
        &s,
        "n1",
        "4",
        "taints: [{key: dedicated, value: gpu, effect: NoSchedule}]",
        "",
    );
    apply(&s, &pod_manifest("plain", "100m", ""));
    let msg = wait_failed_scheduling(&s, "plain");
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
        ),
        "{msg}"
    );
    assert!(
        msg.ends_with("1 Preemption is not helpful for scheduling."),
        "{msg}"
    );
    apply(
        &s,
        &pod_manifest(
            "tolerant",
            "100m",
            "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n",
        ),
    );
    assert_eq!(wait_bound(&s, "tolerant"), "n1");
    // kubectl cordon: NodeUnschedulable.
    s.ok(&["cordon", "n1"]);
    apply(
        &s,
        &pod_manifest(
            "after-cordon",
            "100m",
            "  tolerations: [{key: dedicated, operator: Exists}]\n",
        ),
    );
    let msg = wait_failed_scheduling(&s, "after-cordon");
    assert!(
        msg.starts_with("0/1 nodes are available: 1 node(s) were unschedulable."),
        "{msg}"
    );
    s.ok(&["uncordon", "n1"]);
    assert_eq!(wait_bound(&s, "after-cordon"), "n1");
    assert_eq!(node_of(&s, "plain"), "");
}

#[test]
fn selectors_anti_affinity_and_preemption() {
    let s = Server::start();
    fake_node(&s, "n1", "2", "", ", disk: ssd");
    apply(
        &s,
        &pod_manifest("wants-hdd", "100m", "  nodeSelector: {disk: hdd}\n"),
    );
    let msg = wait_failed_scheduling(&s, "wants-hdd");
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );

    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {group: solo}}\n        topologyKey: kubernetes.io/hostname\n";
    let solo = |name: &str| {
        pod_manifest(name, "100m", anti).replace("labels: {app: ", "labels: {group: solo, app: ")
    };
    apply(&s, &solo("solo1"));
    assert_eq!(wait_bound(&s, "solo1"), "n1");
    apply(&s, &solo("solo2"));
    let msg = wait_failed_scheduling(&s, "solo2");
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
        ),
        "{msg}"
    );

    // Fill the node with a low-priority pod; a higher one preempts it.
    // Priority admission resolves spec.priority from the classes.
    for (class, value) in [("low", 10), ("high", 1000)] {
        apply(
            &s,
            &format!("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {class}}}\nvalue: {value}\n"),
        );
    }
    apply(
        &s,
        &pod_manifest("low", "1500m", "  priorityClassName: low\n"),
    );
    assert_eq!(wait_bound(&s, "low"), "n1");
    apply(
        &s,
        &pod_manifest("high", "1500m", "  priorityClassName: high\n"),
    );
    wait_for("low preempted", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "pod", "low", "-o", "json"]);
        let gone = !out.status.success();
        let deleting = serde_json::from_slice::<Value>(&out.stdout)
            .is_ok_and(|p| !p["metadata"]["deletionTimestamp"].is_null());
        (gone || deleting).then_some(())
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=low,reason=Preempted",
        "-o",
        "json",
    ]);
    assert!(events.contains("Preempted by pod"), "{events}");
    // Without a kubelet nobody finishes the deletion: force it, as a node would.
    let _ = s.kubectl(&["delete", "pod", "low", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(&s, "high"), "n1");
}

#[test]
fn pods_follow_their_local_volumes_node_affinity() {
    let s = Server::start();
    // Node names sort before and after the volume's, so the test fails if
    // the scheduler ignores the volume and picks by name or score alone.
    for n in ["vol-a", "vol-b", "vol-c"] {
        fake_node(&s, n, "4", "", "");
    }
    apply(
        &s,
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {name: local-b}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  local: {path: /mnt/disk}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [vol-b]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources: {requests: {storage: 1Gi}}
"#,
    );
    wait_for("claim bound", Duration::from_secs(30), || {
        let phase = s.ok(&["get", "pvc", "data", "-o", "jsonpath={.status.phase}"]);
        (phase.trim() == "Bound").then_some(())
    });
    for i in 0..3 {
        let name = format!("uses-data-{i}");
        apply(
            &s,
            &pod_manifest(
                &name,
                "100m",
                "  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]\n",
            ),
        );
        assert_eq!(wait_bound(&s, &name), "vol-b");
    }
    // A volume on a node that is gone leaves its pods Pending, saying why.
    s.ok(&["delete", "node", "vol-b"]);
    apply(
        &s,
        &pod_manifest(
            "stranded",
            "100m",
            "  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]\n",
        ),
    );
    let msg = wait_failed_scheduling(&s, "stranded");
    assert!(
        msg.contains("node(s) had volume node affinity conflict"),
        "{msg}"
    );
}
