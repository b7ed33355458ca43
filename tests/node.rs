//! `kone server` as a node: registration, pods on the real runtime with
//! status through the API, restart policy, volumes, env, graceful deletion
//! and restart safety. Each test's server lives in its own network
//! namespace with its own data, run and log folders.

mod common;

use std::time::{Duration, Instant};

use common::{wait_until, Server};
use serde_json::Value;

fn json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&s.ok(args)).expect("kubectl json")
}

fn pod(s: &Server, name: &str) -> Value {
    json(s, &["get", "pod", name, "-o", "json"])
}

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    common::assert_ok(&out, manifest);
}

fn wait_pod(s: &Server, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pod(s, name);
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

fn container_status<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The container's log as the CRI files hold it (content only).
fn log_lines(s: &Server, p: &Value, container: &str) -> Vec<String> {
    let m = &p["metadata"];
    let dir = s.pod_log_dir().join(format!(
        "{}_{}_{}",
        m["namespace"].as_str().unwrap(),
        m["name"].as_str().unwrap(),
        m["uid"].as_str().unwrap()
    ));
    let restarts = container_status(p, container)["restartCount"]
        .as_u64()
        .unwrap_or(0);
    let file = dir.join(container).join(format!("{restarts}.log"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
        .collect()
}

#[test]
fn node_registers_ready_with_upstream_fields() {
    let started = Instant::now();
    let s = Server::start_node();
    wait_until("node Ready", Duration::from_secs(10), || {
        s.kubectl(&[
            "get",
            "node",
            "node1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .stdout
            == b"True"
    });
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "ready after {:?}",
        started.elapsed()
    );
    let n = json(&s, &["get", "node", "node1", "-o", "json"]);
    let labels = &n["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "node1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
    assert_eq!(labels["node.kubernetes.io/instance-type"], "kone");
    assert_eq!(n["spec"]["podCIDR"], "10.42.0.0/24");
    let st = &n["status"];
    assert!(
        st["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "InternalIP" && a["address"] == "10.99.0.2"),
        "{}",
        st["addresses"]
    );
    assert_eq!(st["capacity"]["pods"], "110");
    assert!(st["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("kone://"));
    for c in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(
            st["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["type"] == c && x["reason"].is_string()),
            "{c}"
        );
    }
    let lease = json(
        &s,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "node1",
            "-o",
            "json",
        ],
    );
    assert_eq!(lease["spec"]["holderIdentity"], "node1");
    let wide = s.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.contains("control-plane,master")
            && wide.contains("10.99.0.2")
            && wide.contains("kone://"),
        "{wide}"
    );
}

const WORKLOAD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {tier: web}
spec:
  nodeName: node1
  initContainers:
  - name: first
    image: kone.test/busybox:1
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: kone.test/busybox:1
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: kone.test/busybox:1
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: MESSAGE, value: "$(GREETING) from $(POD_NAME)"}
    command: ["sh", "-c"]
    args:
    - |
      echo "env $MESSAGE on $NODE"
      echo "cm $(cat /cfg/greeting)"
      echo "secret $(cat /sec/password)"
      echo "labels $(cat /info/labels)"
      echo "order $(cat /work/order | tr '\n' ' ')"
      echo shared > /work/from-main
      while true; do sleep 1; done
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
    - {name: work, mountPath: /work}
  - name: side
    image: kone.test/busybox:1
    command: ["sh", "-c", "while [ ! -f /w/from-main ]; do sleep 0.2; done; echo side sees $(cat /w/from-main); while true; do sleep 1; done"]
    volumeMounts: [{name: work, mountPath: /w}]
  volumes:
  - {name: cfg, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  - {name: work, emptyDir: {}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
"#;

#[test]
fn pods_run_with_init_containers_volumes_and_env() {
    let s = Server::start_node();
    apply(&s, WORKLOAD);
    let p = wait_pod(&s, "app", "Running and Ready", |p| {
        p["status"]["phase"] == "Running"
            && p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    });
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert!(
        inits
            .iter()
            .all(|c| c["state"]["terminated"]["reason"] == "Completed"),
        "{inits:?}"
    );
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    assert!(container_status(&p, "main")["containerID"]
        .as_str()
        .unwrap()
        .starts_with("kone://"));
    wait_until("main's output", Duration::from_secs(10), || {
        log_lines(&s, &p, "main").len() >= 5
    });
    let lines = log_lines(&s, &p, "main");
    assert_eq!(
        lines[..5],
        [
            "env hello from app on node1",
            "cm hello",
            "secret s3cret",
            "labels tier=\"web\"",
            "order first second ",
        ],
        "{lines:?}"
    );
    wait_until("side sees the emptyDir", Duration::from_secs(10), || {
        log_lines(&s, &p, "side")
            .iter()
            .any(|l| l == "side sees shared")
    });
    let wide = s.ok(&["get", "pod", "app", "-o", "wide"]);
    assert!(
        wide.contains("2/2") && wide.contains("Running") && wide.contains("node1"),
        "{wide}"
    );
}

#[test]
fn pods_get_addresses_the_node_reaches_and_release_them() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: node1
  containers:
  - name: httpd
    image: kone.test/busybox:1
    command: ["sh", "-c", "mkdir /www; echo served-by-$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www"]
"#,
    );
    let p = wait_pod(&s, "web", "an IP", |p| {
        p["status"]["podIP"].is_string() && p["status"]["phase"] == "Running"
    });
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.42.0.") && ip != "10.42.0.1", "{ip}");
    assert_eq!(p["status"]["podIPs"][0]["ip"], ip.as_str());
    let fetch = || {
        s.in_netns("curl")
            .args(["-s", "-m", "2", &format!("http://{ip}:8080/index.html")])
            .output()
            .expect("wget")
    };
    wait_until("the node reaches the pod", Duration::from_secs(10), || {
        fetch().status.success()
    });
    assert_eq!(String::from_utf8_lossy(&fetch().stdout), "served-by-web\n");
    let ipam = s.data_dir().join("agent/ipam");
    assert!(ipam.join(&ip).exists(), "allocation file for {ip}");
    s.ok(&["delete", "pod", "web", "--grace-period=1"]);
    assert!(!ipam.join(&ip).exists(), "the address was not released");
}

#[test]
fn crash_loop_back_off_and_config_errors() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  nodeName: node1
  containers:
  - {name: c, image: kone.test/busybox:1, command: ["sh", "-c", "echo run; exit 1"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  nodeName: node1
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: c, image: kone.test/busybox:1, command: ["sleep", "100"]}
---
apiVersion: v1
kind: Pod
metadata: {name: needs-cm}
spec:
  nodeName: node1
  containers:
  - name: c
    image: kone.test/busybox:1
    command: ["sleep", "100"]
    env: [{name: X, valueFrom: {configMapKeyRef: {name: later, key: x}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-image}
spec:
  nodeName: node1
  containers:
  - {name: c, image: "127.0.0.1:9/nothing/here:1", command: ["true"]}
"#,
    );
    let p = wait_pod(&s, "crasher", "CrashLoopBackOff", |p| {
        container_status(p, "c")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && container_status(p, "c")["restartCount"].as_u64() >= Some(1)
    });
    let c = container_status(&p, "c");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c}");
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=c pod=crasher_default("),
        "{c}"
    );
    assert!(s
        .ok(&["get", "pod", "crasher"])
        .contains("CrashLoopBackOff"));

    let p = wait_pod(&s, "nonroot", "CreateContainerConfigError", |p| {
        container_status(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let msg = container_status(&p, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("container has runAsNonRoot and image will run as root"),
        "{msg}"
    );

    let p = wait_pod(&s, "needs-cm", "CreateContainerConfigError", |p| {
        container_status(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert_eq!(
        container_status(&p, "c")["state"]["waiting"]["message"],
        "configmap \"later\" not found"
    );
    s.ok(&["create", "configmap", "later", "--from-literal=x=1"]);
    wait_pod(&s, "needs-cm", "Running once the configmap exists", |p| {
        p["status"]["phase"] == "Running"
    });

    // ImagePullBackOff between attempts, ErrImagePull again at the next one.
    let p = wait_pod(&s, "no-image", "ImagePullBackOff", |p| {
        container_status(p, "c")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    wait_pod(&s, "no-image", "ErrImagePull", |p| {
        container_status(p, "c")["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = container_status(&p, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("Failed to pull image \"127.0.0.1:9/nothing/here:1\"")
            && msg.contains("refused"),
        "{msg}"
    );
}

#[test]
fn graceful_delete_and_restart_keep_their_promises() {
    let mut s = Server::start_node();
    let mut manifest = String::new();
    for i in 0..3 {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 5\n  containers:\n  - {{name: c, image: kone.test/busybox:1, command: [\"sh\", \"-c\", \"trap '' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done\"]}}\n"
        ));
    }
    apply(&s, &manifest);
    for i in 0..3 {
        wait_pod(&s, &format!("p{i}"), "Running", |p| {
            p["status"]["phase"] == "Running"
        });
    }
    let before: Vec<Value> = (0..3)
        .map(|i| container_status(&pod(&s, &format!("p{i}")), "c").clone())
        .collect();

    // kill -9 and start again: the containers were not restarted.
    s.restart();
    std::thread::sleep(Duration::from_secs(2));
    for (i, old) in before.iter().enumerate() {
        let p = pod(&s, &format!("p{i}"));
        let now = container_status(&p, "c");
        assert_eq!(now["containerID"], old["containerID"], "p{i} was restarted");
        assert_eq!(
            now["state"]["running"]["startedAt"],
            old["state"]["running"]["startedAt"]
        );
        assert_eq!(now["restartCount"], 0);
        let n = log_lines(&s, &p, "c").len();
        std::thread::sleep(Duration::from_millis(600));
        assert!(log_lines(&s, &p, "c").len() > n, "p{i}'s log stopped");
    }

    // `kubectl logs -f` (1.33 and 1.27) streams lines as they are written.
    for version in ["1.33", "1.27"] {
        use std::io::{BufRead, BufReader};
        let mut follow = s
            .kubectl_cmd(Some(version))
            .args(["logs", "-f", "p1", "--tail=1", "--timestamps"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl logs -f");
        let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let later = lines.nth(3).unwrap().unwrap();
        let _ = follow.kill();
        let _ = follow.wait();
        let tick = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        assert!(tick(&later) >= tick(&first) + 4, "{first} / {later}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(first.split(' ').next().unwrap()).is_ok(),
            "{first}"
        );
    }

    // A process ignoring SIGTERM is killed after the 5 s grace period.
    let started = Instant::now();
    s.ok(&["delete", "pod", "p0", "--wait=true"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert!(!s.kubectl(&["get", "pod", "p0"]).status.success());
}

#[test]
fn probes_drive_readiness_and_restarts() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: kone.test/busybox:1
    command: ["sh", "-c", "mkdir /www; (sleep 3; echo ok > /www/ready) & exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
      failureThreshold: 1
  - name: tcp
    image: kone.test/busybox:1
    command: ["sh", "-c", "sleep 2; exec httpd -f -p 9090"]
    readinessProbe:
      tcpSocket: {port: 9090}
      periodSeconds: 1
  - name: mortal
    image: kone.test/busybox:1
    command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 1000"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    let early = wait_pod(&s, "probed", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(
        container_status(&early, "web")["ready"],
        false,
        "ready before its probe passed"
    );
    wait_pod(&s, "probed", "web and tcp ready", |p| {
        container_status(p, "web")["ready"] == true && container_status(p, "tcp")["ready"] == true
    });
    let p = wait_pod(
        &s,
        "probed",
        "mortal restarted by its liveness probe",
        |p| container_status(p, "mortal")["restartCount"].as_u64() >= Some(1),
    );
    let last = &container_status(&p, "mortal")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
}

#[test]
fn lifecycle_hooks_run_around_the_container() {
    let s = Server::start_node();
    let host = s.dir.path().join("hooks");
    std::fs::create_dir_all(&host).unwrap();
    apply(
        &s,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: kone.test/busybox:1
    command: ["sleep", "1000"]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo started > /host/post-start"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "echo stopping > /host/pre-stop"]}}}}
    volumeMounts: [{{name: host, mountPath: /host}}]
  volumes:
  - {{name: host, hostPath: {{path: {}, type: Directory}}}}
"#,
            host.display()
        ),
    );
    wait_pod(&s, "hooked", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    wait_until("postStart ran", Duration::from_secs(10), || {
        host.join("post-start").exists()
    });
    assert!(!host.join("pre-stop").exists());
    let started = Instant::now();
    s.ok(&["delete", "pod", "hooked"]);
    assert_eq!(
        std::fs::read_to_string(host.join("pre-stop")).unwrap(),
        "stopping\n"
    );
    // sleep as PID 1 ignores SIGTERM: the rest of the 5 s grace period passes.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn active_deadline_fails_the_pod() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  nodeName: node1
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - {name: c, image: kone.test/busybox:1, command: ["sleep", "1000"]}
"#,
    );
    let p = wait_pod(&s, "deadline", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        container_status(&p, "c")["state"]["terminated"]["exitCode"],
        137
    );
}

#[test]
fn pod_spec_details_reach_the_container() {
    let s = Server::start_node();
    apply(
        &s,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {app.conf: "setting=1", other: "unused"}
---
apiVersion: v1
kind: Pod
metadata: {name: details}
spec:
  restartPolicy: Never
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.9.9.9]
    searches: [example.test]
    options: [{name: ndots, value: "2"}]
  volumes:
  - {name: conf, configMap: {name: conf}}
  containers:
  - name: c
    image: kone.test/busybox:1
    securityContext: {readOnlyRootFilesystem: true, runAsUser: 1000, allowPrivilegeEscalation: false}
    volumeMounts:
    - {name: conf, mountPath: /etc/app.conf, subPath: app.conf}
    command:
    - sh
    - -c
    - |
      echo "conf $(cat /etc/app.conf)"
      echo "others $(ls /etc | grep -c other)"
      echo "alias $(grep foo.local /etc/hosts)"
      echo "resolv $(tr '\n' ' ' < /etc/resolv.conf)"
      if touch /probe 2>/dev/null; then echo "root rw"; else echo "root ro"; fi
      echo "uid $(id -u)"
      echo "nnp $(grep NoNewPrivs /proc/self/status | tr -s ' \t' ' ')"
      echo -n "all done" > /dev/termination-log
"#,
    );
    let p = wait_pod(&s, "details", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let term = &container_status(&p, "c")["state"]["terminated"];
    assert_eq!(term["message"], "all done", "{term}");
    let lines = log_lines(&s, &p, "c");
    let want = [
        "conf setting=1",
        "others 0",
        "alias 10.1.2.3\tfoo.local\tbar.local",
        "root ro",
        "uid 1000",
        "nnp NoNewPrivs: 1",
    ];
    for w in want {
        assert!(lines.iter().any(|l| l == w), "want {w:?} in {lines:?}");
    }
    let resolv = lines
        .iter()
        .find(|l| l.starts_with("resolv "))
        .expect("resolv line");
    for w in [
        "nameserver 10.9.9.9",
        "search example.test",
        "options ndots:2",
    ] {
        assert!(resolv.contains(w), "want {w:?} in {resolv:?}");
    }
}
