//! What the node does around its pods: the kubelet's events, pod-level
//! cgroups and OOM kills, sidecar init containers, gRPC probes,
//! node-pressure eviction and image garbage collection. Each test's server
//! lives in its own network namespace with real containers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{wait_until, Server};
use serde_json::Value;

fn json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&s.ok(args)).expect("kubectl json")
}

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    common::assert_ok(&out, manifest);
}

fn wait_pod(s: &Server, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = json(s, &["get", "pod", name, "-o", "json"]);
        if f(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name}: timed out waiting for {what}: {}",
            p["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status_of<'a>(p: &'a Value, list: &str, name: &str) -> &'a Value {
    p["status"][list]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn container<'a>(p: &'a Value, name: &str) -> &'a Value {
    status_of(p, "containerStatuses", name)
}

fn init_container<'a>(p: &'a Value, name: &str) -> &'a Value {
    status_of(p, "initContainerStatuses", name)
}

/// The events about one object, as `kubectl get events` lists them.
fn events_of(s: &Server, name: &str) -> Vec<Value> {
    let selector = format!("involvedObject.name={name}");
    json(
        s,
        &["get", "events", "--field-selector", &selector, "-o", "json"],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_event(s: &Server, pod: &str, reason: &str, message_part: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = events_of(s, pod);
        if let Some(e) = events.iter().find(|e| {
            e["reason"] == reason
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message_part))
        }) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event with {message_part:?} for {pod}: {:#?}",
            events
                .iter()
                .map(|e| format!("{} {}", e["reason"], e["message"]))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn kubelet_events_tell_the_pod_story() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: story}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: crash, image: kone.test/busybox:1, command: ["sh", "-c", "exit 1"]}
  - name: web
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    readinessProbe:
      grpc: {port: 9555}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeName: node1
  containers:
  - {name: c, image: "127.0.0.1:9/nothing/here:1"}
"#,
    );
    let pulled = wait_event(
        &s,
        "story",
        "Pulled",
        "Container image \"kone.test/busybox:1\" already present on machine",
    );
    assert_eq!(pulled["type"], "Normal");
    assert_eq!(pulled["source"]["component"], "kubelet");
    assert_eq!(pulled["source"]["host"], "node1");
    assert_eq!(pulled["reportingComponent"], "kubelet");
    assert_eq!(pulled["involvedObject"]["kind"], "Pod");
    let created = wait_event(&s, "story", "Created", "Created container: crash");
    assert_eq!(
        created["involvedObject"]["fieldPath"],
        "spec.containers{crash}"
    );
    wait_event(&s, "story", "Started", "Started container web");
    let backoff = wait_event(
        &s,
        "story",
        "BackOff",
        "Back-off restarting failed container crash in pod story_default(",
    );
    assert_eq!(backoff["type"], "Warning");
    // gRPC readiness probe against a port nobody serves.
    let unhealthy = wait_event(
        &s,
        "story",
        "Unhealthy",
        "Readiness probe failed: timeout: failed to connect service \"10.42.0.",
    );
    assert_eq!(unhealthy["type"], "Warning");
    assert_eq!(
        unhealthy["involvedObject"]["fieldPath"],
        "spec.containers{web}"
    );
    let p = json(&s, &["get", "pod", "story", "-o", "json"]);
    assert_eq!(container(&p, "web")["ready"], false, "{}", p["status"]);

    // `kubectl describe` shows them, from the kubelet.
    let describe = s.ok(&["describe", "pod", "story"]);
    for line in [
        "Started container web",
        "Created container: crash",
        "Back-off restarting failed container crash",
    ] {
        assert!(describe.contains(line), "{line} missing:\n{describe}");
    }
    assert!(describe.contains("kubelet"), "{describe}");

    // Image errors.
    wait_event(
        &s,
        "nowhere",
        "Pulling",
        "Pulling image \"127.0.0.1:9/nothing/here:1\"",
    );
    let failed = wait_event(
        &s,
        "nowhere",
        "Failed",
        "Failed to pull image \"127.0.0.1:9/nothing/here:1\"",
    );
    assert_eq!(failed["type"], "Warning");
    wait_event(&s, "nowhere", "Failed", "Error: ErrImagePull");
    wait_event(
        &s,
        "nowhere",
        "BackOff",
        "Back-off pulling image \"127.0.0.1:9/nothing/here:1\"",
    );
    wait_event(&s, "nowhere", "Failed", "Error: ImagePullBackOff");

    // Deletion stops the containers.
    s.ok(&["delete", "pod", "story", "--wait=false"]);
    wait_event(&s, "story", "Killing", "Stopping container web");
}

/// A cgroup file of the pod, wherever this host keeps it (v1 hierarchies
/// or the unified one).
fn pod_cgroup_file(cgroup: &str, v1: (&str, &str), v2: &str) -> String {
    let root = Path::new("/sys/fs/cgroup");
    let file = if root.join("cgroup.controllers").exists() {
        root.join(cgroup).join(v2)
    } else {
        root.join(v1.0).join(cgroup).join(v1.1)
    };
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_string()
}

#[test]
fn pod_cgroups_hold_the_pods_limits_and_oom_kills_show() {
    let s = Server::start_node_with_env(&[("KONE_POD_MAX_PIDS", "64")]);
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sized}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    resources:
      requests: {cpu: 200m, memory: 50Mi}
      limits: {cpu: 200m, memory: 50Mi}
  - name: b
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    resources:
      requests: {cpu: 100m, memory: 30Mi}
      limits: {cpu: 100m, memory: 30Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: burst}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    resources:
      requests: {cpu: 50m}
---
apiVersion: v1
kind: Pod
metadata: {name: greedy}
spec:
  nodeName: node1
  restartPolicy: Never
  containers:
  - name: c
    image: kone.test/busybox:1
    command: ["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived"]
    resources:
      limits: {memory: 20Mi}
"#,
    );
    let p = wait_pod(&s, "sized", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    let cg = format!("kubepods/pod{}", p["metadata"]["uid"].as_str().unwrap());
    assert_eq!(
        pod_cgroup_file(&cg, ("memory", "memory.limit_in_bytes"), "memory.max"),
        (80u64 << 20).to_string()
    );
    let quota = pod_cgroup_file(&cg, ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert_eq!(quota.split(' ').next(), Some("30000"), "{quota}");
    assert_eq!(pod_cgroup_file(&cg, ("pids", "pids.max"), "pids.max"), "64");
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(pod_cgroup_file(&cg, ("cpu", "cpu.shares"), ""), "307");
    }
    // The containers' own cgroups nest inside the pod's.
    let nested = std::fs::read_dir(Path::new("/sys/fs/cgroup/pids").join(&cg))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(2);
    assert_eq!(nested, 2);

    let p = wait_pod(&s, "burst", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(p["status"]["qosClass"], "Burstable");
    let cg = format!(
        "kubepods/burstable/pod{}",
        p["metadata"]["uid"].as_str().unwrap()
    );
    let unlimited = pod_cgroup_file(&cg, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert!(
        unlimited == "max" || unlimited.parse::<u64>().unwrap() > 1 << 50,
        "{unlimited}"
    );
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(pod_cgroup_file(&cg, ("cpu", "cpu.shares"), ""), "51");
        assert_eq!(pod_cgroup_file(&cg, ("cpu", "cpu.cfs_quota_us"), ""), "-1");
    }

    let p = wait_pod(&s, "greedy", "Failed", |p| p["status"]["phase"] == "Failed");
    let t = &container(&p, "c")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
}

#[test]
fn sidecars_start_in_order_keep_running_and_stop_with_the_pod() {
    let s = Server::start_node();
    s.ok(&["create", "configmap", "cfg", "--from-literal=key=v"]);
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: job-like}
spec:
  nodeName: node1
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: proxy
    image: kone.test/busybox:1
    restartPolicy: Always
    command: ["sh", "-c", "sleep 2; touch /tmp/up; exec sleep 1000"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/up"]}
      periodSeconds: 1
  - {name: setup, image: kone.test/busybox:1, command: ["true"]}
  containers:
  - {name: app, image: kone.test/busybox:1, command: ["sleep", "3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: flaky-sidecar}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: flaky
    image: kone.test/busybox:1
    restartPolicy: Always
    command: ["sh", "-c", "sleep 1; exit 1"]
  containers:
  - {name: app, image: kone.test/busybox:1, command: ["sleep", "1000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: grouped}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    fsGroup: 2000
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "1000"}]
  volumes:
  - {name: data, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  containers:
  - name: app
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: cfg, mountPath: /cfg}
    - {name: mem, mountPath: /mem}
"#,
    );
    // fsGroup owns the volumes: setgid folders, group-readable files.
    wait_pod(&s, "grouped", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    let out = s.ok(&[
        "exec",
        "grouped",
        "--",
        "sh",
        "-c",
        "stat -c '%g %a' /data /cfg/..data/key; touch /data/x && stat -c %g /data/x; id -G",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["2000 2777", "2000 644", "2000"], "{out}");
    assert!(lines[3].split(' ').any(|g| g == "2000"), "{out}");
    // A memory emptyDir is a tmpfs of its sizeLimit; sysctls apply in the pod.
    let out = s.ok(&[
        "exec",
        "grouped",
        "--",
        "sh",
        "-c",
        "grep ' /mem ' /proc/mounts; cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    ]);
    assert!(
        out.starts_with("tmpfs /mem tmpfs ") && out.contains("size=1024k"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("1000"), "{out}");
    // The app finishing completes the pod although its sidecar never exits.
    let p = wait_pod(&s, "job-like", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let secs = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{v}: {e}"))
            .timestamp()
    };
    let proxy = init_container(&p, "proxy");
    let setup = init_container(&p, "setup");
    assert_eq!(proxy["restartCount"], 0, "{proxy}");
    assert!(
        proxy["state"]["terminated"].is_object(),
        "the sidecar was not stopped: {proxy}"
    );
    // setup waited for the sidecar's startup probe (2 s).
    let proxy_started = secs(&proxy["state"]["terminated"]["startedAt"]);
    let setup_started = secs(&setup["state"]["terminated"]["startedAt"]);
    assert!(
        setup_started >= proxy_started + 2,
        "setup at {setup_started}, proxy at {proxy_started}"
    );
    assert_eq!(setup["state"]["terminated"]["exitCode"], 0);
    assert_eq!(container(&p, "app")["state"]["terminated"]["exitCode"], 0);

    // A crashing sidecar is restarted with back-off; the app keeps running.
    let p = wait_pod(&s, "flaky-sidecar", "sidecar restarts", |p| {
        init_container(p, "flaky")["restartCount"].as_u64() >= Some(2)
    });
    assert_eq!(p["status"]["phase"], "Running");
    let app = container(&p, "app");
    assert_eq!(app["restartCount"], 0, "{app}");
    assert!(app["state"]["running"].is_object(), "{app}");
    let initialized = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .cloned()
        .unwrap_or_default();
    assert_eq!(initialized["status"], "True", "{initialized}");
}

#[test]
fn memory_pressure_taints_the_node_and_evicts_best_effort_first() {
    // A threshold above any machine's memory: the node is always short.
    let s = Server::start_node_with_env(&[("KONE_EVICTION_HARD", "memory.available<1000Ti")]);
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: kone.test/busybox:1, command: ["sleep", "1000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: precious}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 100m, memory: 32Mi}
"#,
    );
    let p = wait_pod(&s, "hog", "evicted", |p| p["status"]["phase"] == "Failed");
    let precious = json(&s, &["get", "pod", "precious", "-o", "json"]);
    assert_ne!(
        precious["status"]["phase"], "Failed",
        "the Guaranteed pod went before the BestEffort one"
    );
    assert_eq!(p["status"]["reason"], "Evicted", "{}", p["status"]);
    let msg = p["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "The node was low on resource: memory. Threshold quantity: 1000Ti, available: "
        ),
        "{msg}"
    );
    let target = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(target["reason"], "TerminationByKubelet", "{}", p["status"]);
    let evicted = wait_event(
        &s,
        "hog",
        "Evicted",
        "The node was low on resource: memory.",
    );
    assert_eq!(evicted["type"], "Warning");
    wait_pod(&s, "hog", "its container stopped", |p| {
        container(p, "c")["state"]["terminated"].is_object()
    });

    let node = json(&s, &["get", "node", "node1", "-o", "json"]);
    let memory = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "MemoryPressure")
        .cloned()
        .unwrap_or_default();
    assert_eq!(memory["status"], "True", "{memory}");
    assert_eq!(memory["reason"], "KubeletHasInsufficientMemory");
    wait_until("the memory-pressure taint", Duration::from_secs(20), || {
        s.ok(&["get", "node", "node1", "-o", "jsonpath={.spec.taints}"])
            .contains("node.kubernetes.io/memory-pressure")
    });
    // Guaranteed pods go last, but under lasting pressure they go too.
    let p = wait_pod(&s, "precious", "evicted", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "Evicted");
}

/// The test image's docker-save archive under another name.
fn renamed_archive(to: &Path, name: &str) {
    let src = common::images::test_image_dir().join("busybox-docker.tar");
    let mut archive = tar::Archive::new(std::fs::File::open(src).expect("test image"));
    let mut out = tar::Builder::new(std::fs::File::create(to).expect("archive"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").into_owned();
        let mut data = vec![];
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        if path == Path::new("manifest.json") || path == Path::new("repositories") {
            data = String::from_utf8(data)
                .expect("json")
                .replace("kone.test/busybox", name)
                .into_bytes();
        }
        let mut header = entry.header().clone();
        header.set_size(data.len() as u64);
        header.set_cksum();
        out.append(&header, &data[..]).expect("append");
    }
    out.finish().expect("finish");
}

#[test]
fn image_gc_removes_unused_images_and_keeps_those_in_use() {
    // Watermarks of 0 %: every round wants space back.
    let s = Server::start_node_with_env(&[
        ("KONE_IMAGE_GC_HIGH_THRESHOLD", "0"),
        ("KONE_IMAGE_GC_LOW_THRESHOLD", "0"),
        ("KONE_MINIMUM_IMAGE_TTL_DURATION", "5s"),
    ]);
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: kone.test/busybox:1, command: ["sleep", "1000"]}
"#,
    );
    let archive = s.dir.path().join("other.tar");
    renamed_archive(&archive, "kone.test/other");
    let data = s.data_dir();
    common::images::ok(&common::images::kone_images(
        &data,
        &["import", archive.to_str().unwrap()],
    ));
    let list = || common::images::ok(&common::images::kone_images(&data, &["ls", "-q"]));
    assert!(list().contains("kone.test/other:1"), "{}", list());
    wait_until("the unused image removed", Duration::from_secs(40), || {
        !list().contains("kone.test/other:1")
    });
    assert!(list().contains("kone.test/busybox:1"), "{}", list());
    let p = wait_pod(&s, "user", "Running", |p| p["status"]["phase"] == "Running");
    assert_eq!(container(&p, "c")["restartCount"], 0);
}
