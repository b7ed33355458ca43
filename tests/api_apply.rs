//! Client-side `kubectl apply` (strategic merge patches with the
//! last-applied annotation) and `kubectl patch` of every type, with the
//! real kubectl 1.33 and 1.27.

mod common;

use common::{assert_ok, Server};
use serde_json::Value;

fn manifest(name: &str, second: bool, b: &str) -> String {
    let (labels, sidecar) = if second {
        ("{app: demo}", "\n      - name: side\n        image: busybox:1.36\n        command: [\"sleep\", \"3600\"]")
    } else {
        ("{app: demo, tier: front}", "")
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {labels}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sleep", "3600"]
        env:
        - {{name: A, value: "1"}}
        - {{name: B, value: "{b}"}}{sidecar}
"#
    )
}

fn get(s: &Server, name: &str) -> Value {
    serde_json::from_str(&s.ok(&["get", "deployment", name, "-o", "json"])).expect("json")
}

fn generation(d: &Value) -> i64 {
    d["metadata"]["generation"].as_i64().expect("generation")
}

fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn apply(s: &Server, version: &str, yaml: &str) {
    let out = s.kubectl_stdin(Some(version), &["apply", "-f", "-"], yaml);
    assert_ok(&out, ("apply", version));
}

#[test]
fn apply_twice_and_patch_types_with_both_kubectl_versions() {
    let s = Server::start();
    for version in ["1.33", "1.27"] {
        let name = format!("web-{}", version.replace('.', ""));
        apply(&s, version, &manifest(&name, false, "2"));
        let first = get(&s, &name);
        assert_eq!(first["metadata"]["labels"]["tier"], "front");
        // a field another manager set
        s.ok(&["annotate", "deployment", &name, "note=keep"]);
        let g1 = generation(&get(&s, &name));

        // second apply: container added, env changed, label removed
        apply(&s, version, &manifest(&name, true, "3"));
        let d = get(&s, &name);
        assert_eq!(container_names(&d), ["web", "side"], "{version}");
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]),
            "{version}"
        );
        assert_eq!(
            d["metadata"]["labels"],
            serde_json::json!({"app": "demo"}),
            "{version}"
        );
        assert_eq!(d["metadata"]["annotations"]["note"], "keep", "{version}");
        assert_eq!(
            generation(&d),
            g1 + 1,
            "{version}: one bump per spec change"
        );

        // the same manifest again: nothing changes
        apply(&s, version, &manifest(&name, true, "3"));
        let d = get(&s, &name);
        assert_eq!(generation(&d), g1 + 1, "{version}: no-op apply");
        assert_eq!(container_names(&d), ["web", "side"]);

        // an env var set by another client survives an apply that changes
        // the list: kubectl patches the list by merge key
        s.ok(&[
            "set",
            "env",
            &format!("deployment/{name}"),
            "-c",
            "web",
            "C=9",
        ]);
        apply(&s, version, &manifest(&name, true, "4"));
        let d = get(&s, &name);
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "4"}, {"name": "C", "value": "9"}]),
            "{version}"
        );
        let g1 = g1 + 2;

        // kubectl patch: strategic by default, and explicitly
        let add = r#"{"spec":{"template":{"spec":{"containers":[{"name":"extra","image":"busybox:1.36"}]}}}}"#;
        let out = s.kubectl_v(Some(version), &["patch", "deployment", &name, "-p", add]);
        assert_ok(&out, ("patch add", version));
        let d = get(&s, &name);
        let mut names = container_names(&d);
        names.sort();
        assert_eq!(names, ["extra", "side", "web"], "{version}");
        assert_eq!(generation(&d), g1 + 2);
        let del =
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#;
        let out = s.kubectl_v(
            Some(version),
            &[
                "patch",
                "deployment",
                &name,
                "--type",
                "strategic",
                "-p",
                del,
            ],
        );
        assert_ok(&out, ("patch delete", version));
        let d = get(&s, &name);
        let mut names = container_names(&d);
        names.sort();
        assert_eq!(names, ["extra", "web"], "{version}");
        // the untouched container keeps its env
        let web = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "web")
            .unwrap()
            .clone();
        assert_eq!(web["env"][1]["value"], "4");

        // the other patch types still work on the same object
        let out = s.kubectl_v(
            Some(version),
            &[
                "patch",
                "deployment",
                &name,
                "--type",
                "merge",
                "-p",
                r#"{"metadata":{"labels":{"m":"1"}}}"#,
            ],
        );
        assert_ok(&out, ("patch merge", version));
        let out = s.kubectl_v(
            Some(version),
            &[
                "patch",
                "deployment",
                &name,
                "--type",
                "json",
                "-p",
                r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
            ],
        );
        assert_ok(&out, ("patch json", version));
        let d = get(&s, &name);
        assert_eq!(d["metadata"]["labels"]["m"], "1");
        assert_eq!(d["metadata"]["labels"]["j"], "2");
        assert_eq!(d["metadata"]["annotations"]["note"], "keep");
    }
}

#[test]
fn strategic_patch_errors() {
    let s = Server::start();
    apply(&s, "1.33", &manifest("web", false, "2"));
    // a list element without its merge key
    let bad = r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#;
    let out = s.kubectl_v(Some("1.33"), &["patch", "deployment", "web", "-p", bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
}
