//! Server-side printing with upstream's columns, and aggregated discovery,
//! as stock kubectl sees them.

mod common;

use common::{assert_ok, Server};

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: lonely
spec:
  containers:
  - name: app
    image: busybox
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
  b: "2"
"#;

/// The header line of kubectl's table output, split on whitespace runs.
fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// The first data row whose first column is `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .map(words)
        .find(|w| w.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

fn get(s: &Server, args: &[&str]) -> String {
    let out = s.kubectl_v(Some("1.33"), args);
    assert_ok(&out, args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kubectl_tables_have_upstream_columns() {
    let s = Server::start();
    let out = s.kubectl_stdin(Some("1.33"), &["apply", "-f", "-"], MANIFESTS);
    assert_ok(&out, "apply");

    let pods = get(&s, &["get", "pods"]);
    assert_eq!(header(&pods), words("NAME READY STATUS RESTARTS AGE"));
    let wide = get(&s, &["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        words("NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES")
    );

    let deploy = get(&s, &["get", "deploy"]);
    assert_eq!(
        header(&deploy),
        words("NAME READY UP-TO-DATE AVAILABLE AGE")
    );
    let r = row(&deploy, "web");
    assert_eq!(r[1], "0/0");
    let deploy_wide = get(&s, &["get", "deploy", "-o", "wide"]);
    assert_eq!(
        header(&deploy_wide),
        words("NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR")
    );
    let r = row(&deploy_wide, "web");
    assert_eq!(&r[5..], ["nginx", "nginx:1.27", "app=web"]);

    let svc = get(&s, &["get", "svc"]);
    assert_eq!(
        header(&svc),
        words("NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE")
    );
    let r = row(&svc, "web");
    assert_eq!(r[1], "NodePort");
    assert_eq!(r[3], "<none>");
    assert_eq!(r[4], "80:30080/TCP");
    let svc_wide = get(&s, &["get", "svc", "-o", "wide"]);
    assert_eq!(
        header(&svc_wide),
        words("NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR")
    );
    assert_eq!(row(&svc_wide, "web")[6], "app=web");

    let cm = get(&s, &["get", "cm"]);
    assert_eq!(header(&cm), words("NAME DATA AGE"));
    assert_eq!(row(&cm, "settings")[1], "2");

    let nodes = s.kubectl_v(Some("1.33"), &["get", "nodes"]);
    assert_ok(&nodes, "get nodes");
    let nodes = String::from_utf8_lossy(&nodes.stdout).into_owned();
    if nodes.trim().is_empty() {
        // No nodes yet: kubectl says "No resources found" on stderr.
        let ns = get(&s, &["get", "ns"]);
        assert_eq!(header(&ns), words("NAME STATUS AGE"));
        assert_eq!(row(&ns, "default")[1], "Active");
        // Nothing can schedule the pod.
        let r = row(&pods, "lonely");
        assert_eq!(&r[1..4], ["0/1", "Pending", "0"]);
        let r = row(&wide, "lonely");
        assert_eq!(&r[5..], ["<none>", "<none>", "<none>", "<none>"]);
    } else {
        assert_eq!(header(&nodes), words("NAME STATUS ROLES AGE VERSION"));
    }
}

#[test]
fn kubectl_uses_aggregated_discovery() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let out = s.kubectl_v(Some(v), &["api-resources"]);
        assert_ok(&out, ("api-resources", v));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pods = row(&text, "pods");
        assert_eq!(pods, words("pods po v1 true Pod"));
        let deploy = row(&text, "deployments");
        assert_eq!(deploy, words("deployments deploy apps/v1 true Deployment"));
    }
    // With an empty cache, -v=8 shows the aggregated response.
    let out = s.kubectl_v(
        Some("1.33"),
        &[
            "api-resources",
            "-v=8",
            "--cache-dir",
            "/nonexistent/kone-no-cache",
        ],
    );
    assert_ok(&out, "api-resources -v=8");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        log.contains(
            "Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ),
        "{log}"
    );
    // The aggregated documents replace the per-group-version fetches.
    assert!(!log.contains("/api/v1?timeout"), "{log}");
    assert!(!log.contains("/apis/apps/v1?timeout"), "{log}");
}
