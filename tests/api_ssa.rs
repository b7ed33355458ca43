//! Server-side apply and managedFields, with the real kubectl 1.33 and
//! 1.27 (`apply --server-side`, `--force-conflicts`, `diff --server-side`,
//! `get --show-managed-fields`, the client-side to server-side migration,
//! `apply --subresource=status`) and kube-rs `Patch::Apply`.

mod common;

use std::time::Duration;

use common::{assert_ok, wait_until, Server};
use serde_json::{json, Value};

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
        ports:
        - containerPort: 80
        env:
        - {{name: A, value: "1"}}
        - {{name: B, value: "{b}"}}{sidecar}
"#
    )
}

fn get(s: &Server, name: &str) -> Value {
    serde_json::from_str(&s.ok(&[
        "get",
        "deployment",
        name,
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .expect("json")
}

fn generation(d: &Value) -> i64 {
    d["metadata"]["generation"].as_i64().expect("generation")
}

fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The managedFields entry of a manager and operation.
fn entry<'a>(d: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    d["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn ssa(s: &Server, version: &str, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    s.kubectl_stdin(Some(version), &args, yaml)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn server_side_apply_with_both_kubectl_versions() {
    let s = Server::start();
    for version in ["1.33", "1.27"] {
        let name = format!("ssa-{}", version.replace('.', ""));
        assert_ok(
            &ssa(&s, version, &manifest(&name, false, "2"), &[]),
            version,
        );
        let d = get(&s, &name);
        assert_eq!(d["metadata"]["labels"]["tier"], "front");
        let applied = entry(&d, "kubectl", "Apply").expect("kubectl Apply entry");
        assert_eq!(applied["apiVersion"], "apps/v1");
        assert_eq!(applied["fieldsType"], "FieldsV1");
        assert!(applied["time"].is_string());
        let f = &applied["fieldsV1"];
        // upstream's shape: no "." on maps an apply sets, list-map items
        // keyed (ports by both keys, the defaulted protocol included) and
        // members themselves
        assert_eq!(
            f["f:metadata"]["f:labels"],
            json!({"f:app": {}, "f:tier": {}})
        );
        let web = &f["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"web"}"#];
        assert_eq!(web["."], json!({}), "{f}");
        assert_eq!(web["f:image"], json!({}));
        assert_eq!(web["f:command"], json!({}), "atomic list is a leaf");
        assert_eq!(
            web["f:ports"][r#"k:{"containerPort":80,"protocol":"TCP"}"#],
            json!({".": {}, "f:containerPort": {}})
        );
        assert_eq!(
            web["f:env"][r#"k:{"name":"B"}"#],
            json!({".": {}, "f:name": {}, "f:value": {}})
        );
        // defaults are nobody's
        assert!(web.get("f:imagePullPolicy").is_none());

        // another manager's label, with its Update entry
        s.ok(&["label", "deployment", &name, "other=yes"]);
        let d = get(&s, &name);
        let label = entry(&d, "kubectl-label", "Update").expect("kubectl-label entry");
        assert_eq!(
            label["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:other": {}}}})
        );
        let g1 = generation(&d);

        // container added, env changed, label removed
        assert_ok(&ssa(&s, version, &manifest(&name, true, "3"), &[]), version);
        let d = get(&s, &name);
        assert_eq!(container_names(&d), ["web", "side"], "{version}");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
        );
        assert_eq!(
            d["metadata"]["labels"],
            json!({"app": "demo", "other": "yes"}),
            "{version}: applier's dropped label gone, the other kept"
        );
        assert_eq!(
            generation(&d),
            g1 + 1,
            "{version}: one bump per spec change"
        );
        assert_ok(&ssa(&s, version, &manifest(&name, true, "3"), &[]), version);
        assert_eq!(generation(&get(&s, &name)), g1 + 1, "no-op apply");

        // a second applier changing the same field: 409 naming the owner
        let other = manifest(&name, true, "3").replace("replicas: 1", "replicas: 4");
        let out = ssa(&s, version, &other, &["--field-manager", "ops"]);
        assert!(!out.status.success(), "{version}: conflict expected");
        let err = stderr(&out);
        assert!(
            err.contains(
                r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
            ),
            "{version}: {err}"
        );
        assert_eq!(get(&s, &name)["spec"]["replicas"], 1);
        let out = ssa(
            &s,
            version,
            &other,
            &["--field-manager", "ops", "--force-conflicts"],
        );
        assert_ok(&out, (version, "force"));
        let d = get(&s, &name);
        assert_eq!(d["spec"]["replicas"], 4);
        let ops = entry(&d, "ops", "Apply").expect("ops entry");
        assert_eq!(ops["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        let mine = entry(&d, "kubectl", "Apply").expect("kubectl entry");
        assert!(
            mine["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
            "ownership taken: {mine}"
        );

        // a conflict with an Update manager names its apiVersion
        s.ok(&[
            "set",
            "image",
            &format!("deployment/{name}"),
            "web=busybox:1.37",
        ]);
        let out = ssa(&s, version, &other, &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(r#"conflict with "kubectl-set" using apps/v1: .spec.template.spec.containers[name="web"].image"#),
            "{version}: {err}"
        );
    }
}

#[test]
fn diff_dry_run_and_show_managed_fields() {
    let s = Server::start();
    assert_ok(&ssa(&s, "1.33", &manifest("d", false, "2"), &[]), "apply");
    let changed = manifest("d", false, "9");
    for version in ["1.33", "1.27"] {
        let out = s.kubectl_stdin(
            Some(version),
            &["diff", "--server-side", "-f", "-"],
            &changed,
        );
        assert_eq!(out.status.code(), Some(1), "{version}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("+          value: \"9\""),
            "{version}: {text}"
        );
        assert!(
            text.contains("-          value: \"2\""),
            "{version}: {text}"
        );
        // no difference: exit 0, nothing printed
        let same = s.kubectl_stdin(
            Some(version),
            &["diff", "--server-side", "-f", "-"],
            &manifest("d", false, "2"),
        );
        assert_eq!(same.status.code(), Some(0), "{version}: {}", stderr(&same));
        assert!(same.stdout.is_empty(), "{version}");
    }
    // dry run: nothing stored
    assert_ok(&ssa(&s, "1.33", &changed, &["--dry-run=server"]), "dry run");
    let d = get(&s, "d");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"],
        "2"
    );
    let shown = s.ok(&[
        "get",
        "deployment",
        "d",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(shown.contains("managedFields:"), "{shown}");
    assert!(shown.contains("manager: kubectl"), "{shown}");
    assert!(shown.contains("operation: Apply"), "{shown}");
    let hidden = s.ok(&["get", "deployment", "d", "-o", "yaml"]);
    assert!(!hidden.contains("managedFields"));
}

#[test]
fn apply_to_the_status_subresource() {
    let s = Server::start();
    assert_ok(&ssa(&s, "1.33", &manifest("st", false, "2"), &[]), "apply");
    let before = get(&s, "st");
    let status = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: st
spec:
  replicas: 7
status:
  conditions:
  - type: Probe
    status: "True"
    reason: Applied
    message: set by a status apply
"#;
    let out = s.kubectl_stdin(
        Some("1.33"),
        &[
            "apply",
            "--server-side",
            "--subresource=status",
            "--field-manager=prober",
            "-o",
            "json",
            "--show-managed-fields",
            "-f",
            "-",
        ],
        status,
    );
    assert_ok(&out, "status apply");
    let d: Value = serde_json::from_slice(&out.stdout).expect("json");
    let probe = d["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Probe")
        .expect("the applied condition")
        .clone();
    assert_eq!(probe["reason"], "Applied");
    // the status subresource changes status only
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(generation(&d), generation(&before));
    let e = entry(&d, "prober", "Apply").expect("prober Apply entry");
    assert_eq!(e["subresource"], "status");
    let owned = &e["fieldsV1"];
    assert!(owned.get("f:spec").is_none(), "{owned}");
    assert_eq!(
        owned["f:status"]["f:conditions"][r#"k:{"type":"Probe"}"#]["f:reason"],
        json!({}),
        "{owned}"
    );
    // the main resource's apply entry is untouched
    let main = entry(&d, "kubectl", "Apply").expect("kubectl Apply entry");
    assert!(main.get("subresource").is_none());
    assert!(main["fieldsV1"].get("f:status").is_none());
}

#[test]
fn client_side_apply_migrates_to_server_side() {
    let s = Server::start();
    for version in ["1.33", "1.27"] {
        let name = format!("mig-{}", version.replace('.', ""));
        let out = s.kubectl_stdin(
            Some(version),
            &["apply", "-f", "-"],
            &manifest(&name, false, "2"),
        );
        assert_ok(&out, (version, "client-side apply"));
        let d = get(&s, &name);
        let csa = entry(&d, "kubectl-client-side-apply", "Update").expect("csa entry");
        assert_eq!(
            csa["fieldsV1"]["f:metadata"]["f:labels"],
            json!({".": {}, "f:app": {}, "f:tier": {}}),
            "an Update entry marks the maps it added"
        );
        // server-side now: kubectl may take over what its client-side
        // configuration set (the env value) and then moves the client-side
        // entry to its own apply entry, as upstream
        assert_ok(&ssa(&s, version, &manifest(&name, true, "3"), &[]), version);
        let d = get(&s, &name);
        assert_eq!(container_names(&d), ["web", "side"]);
        assert!(
            entry(&d, "kubectl-client-side-apply", "Update").is_none(),
            "{version}: migrated: {}",
            d["metadata"]["managedFields"]
        );
        // so the next server-side apply drops the label the client-side
        // configuration had set
        assert_ok(&ssa(&s, version, &manifest(&name, true, "3"), &[]), version);
        let d = get(&s, &name);
        assert_eq!(d["metadata"]["labels"], json!({"app": "demo"}), "{version}");
        assert!(entry(&d, "kubectl", "Apply").is_some());
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer}
              hosts:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              jobs:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  properties:
                    name: {type: string}
                    image: {type: string}
"#;

fn crontab(hosts: &str, jobs: &str) -> String {
    format!(
        r#"apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: "* * * * */5"
  hosts: {hosts}
  jobs: {jobs}
"#
    )
}

#[test]
fn apply_to_a_custom_resource_uses_its_list_types() {
    let s = Server::start();
    assert_ok(&s.kubectl_stdin(None, &["apply", "-f", "-"], CRD), "crd");
    wait_until("crontabs served", Duration::from_secs(20), || {
        s.kubectl(&["get", "crontabs"]).status.success()
    });
    let first = crontab(
        "[a, b]",
        "[{name: ex, image: one}, {name: why, image: two}]",
    );
    assert_ok(&ssa(&s, "1.33", &first, &[]), "apply crontab");
    let get = || -> Value {
        serde_json::from_str(&s.ok(&[
            "get",
            "crontab",
            "nightly",
            "-o",
            "json",
            "--show-managed-fields",
        ]))
        .expect("json")
    };
    let d = get();
    let f = &entry(&d, "kubectl", "Apply").expect("entry")["fieldsV1"]["f:spec"];
    assert_eq!(f["f:hosts"], json!({r#"v:"a""#: {}, r#"v:"b""#: {}}));
    assert_eq!(
        f["f:jobs"][r#"k:{"name":"why"}"#],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
    // another manager's field survives an apply that leaves it out
    let out = s.kubectl(&[
        "patch",
        "crontab",
        "nightly",
        "--type",
        "merge",
        "--field-manager",
        "helper",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    assert_ok(&out, "merge patch");
    let second = crontab("[a]", "[{name: ex, image: three}]");
    assert_ok(&ssa(&s, "1.33", &second, &[]), "re-apply");
    let d = get();
    assert_eq!(d["spec"]["hosts"], json!(["a"]));
    assert_eq!(d["spec"]["jobs"], json!([{"name": "ex", "image": "three"}]));
    assert_eq!(d["spec"]["replicas"], 3, "another manager's field kept");
    let out = ssa(
        &s,
        "1.33",
        &second.replace(
            "cronSpec: \"* * * * */5\"",
            "cronSpec: \"* * * * */5\"\n  replicas: 1",
        ),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains(r#"conflict with "helper" using stable.example.com/v1: .spec.replicas"#),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_patch_apply() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};
    let s = Server::start();
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "conf"},
        "data": {"a": "1", "b": "2"}
    });
    // apply on a missing object creates it
    let pp = PatchParams::apply("kone-test");
    let made = cms
        .patch("conf", &pp, &Patch::Apply(&cm))
        .await
        .expect("create by apply");
    let fields = made.metadata.managed_fields.expect("managedFields");
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].manager.as_deref(), Some("kone-test"));
    assert_eq!(fields[0].operation.as_deref(), Some("Apply"));

    // dry run leaves the object alone
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"a": "9"}});
    let dry = cms
        .patch(
            "conf",
            &PatchParams::apply("kone-test").dry_run(),
            &Patch::Apply(&changed),
        )
        .await
        .expect("dry run");
    assert_eq!(dry.data.as_ref().and_then(|d| d.get("b")), None);
    let live = cms.get("conf").await.expect("get");
    assert_eq!(
        live.data
            .as_ref()
            .and_then(|d| d.get("b"))
            .map(String::as_str),
        Some("2")
    );

    // a typed client's conflict, and forcing it
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"a": "other"}});
    let err = cms
        .patch(
            "conf",
            &PatchParams::apply("second"),
            &Patch::Apply(&theirs),
        )
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 409);
            assert_eq!(e.reason, "Conflict");
            assert_eq!(
                e.message,
                r#"Apply failed with 1 conflict: conflict with "kone-test": .data.a"#
            );
        }
        other => panic!("{other:?}"),
    }
    let forced = cms
        .patch(
            "conf",
            &PatchParams::apply("second").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("forced");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("other")
    );

    // without a field manager: refused as upstream
    let url = format!("{}/api/v1/namespaces/default/configmaps/conf", s.url());
    let resp = s
        .http()
        .patch(&url)
        .bearer_auth(common::TEST_TOKEN)
        .header("Content-Type", "application/apply-patch+yaml")
        .body(cm.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.expect("status");
    assert_eq!(
        status["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(status["details"]["causes"][0]["field"], "fieldManager");
    // force belongs to apply only
    let resp = s
        .http()
        .patch(format!("{url}?force=true"))
        .bearer_auth(common::TEST_TOKEN)
        .header("Content-Type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 422);
}
