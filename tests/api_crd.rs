//! CustomResourceDefinitions as kubectl 1.33, kubectl 1.27 and kube-rs see
//! them: serving within a second, discovery, schema validation, defaulting,
//! pruning, subresources, printer columns, versions and cleanup.

mod common;

use std::time::{Duration, Instant};

use common::{assert_ok, wait_until, Server};
use serde_json::Value;

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [stable]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
                default: nginx
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
  labels: {tier: batch}
spec:
  cronSpec: "* * * * */5"
  extra: {anything: {goes: here}}
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).expect("kubectl -o json")
}

fn raw(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.ok(&["get", "--raw", path])).expect("JSON from --raw")
}

fn condition<'a>(crd: &'a Value, ty: &str) -> &'a Value {
    crd["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .unwrap_or(&Value::Null)
}

/// Create a CRD and return how long until its collection answered.
fn create_and_time(s: &Server, manifest: &str, collection: &str) -> Duration {
    assert_ok(
        &s.kubectl_stdin(None, &["create", "-f", "-"], manifest),
        "create CRD",
    );
    let started = Instant::now();
    // curl rather than kubectl: a kubectl start costs more than the second
    // being measured on a loaded machine.
    let url = format!("{}{collection}", s.url());
    let ca = s.data_dir().join("server/tls/server-ca.crt");
    wait_until(collection, Duration::from_secs(10), || {
        std::process::Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--cacert"])
            .arg(&ca)
            .args([
                "-H",
                &format!("Authorization: Bearer {}", common::TEST_TOKEN),
                &url,
            ])
            .status()
            .is_ok_and(|st| st.success())
    });
    started.elapsed()
}

fn header(out: &str) -> Vec<&str> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

#[test]
fn crontab_with_kubectl_133() {
    let s = Server::start();
    let took = create_and_time(
        &s,
        CRONTAB_CRD,
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    );
    assert!(took < Duration::from_secs(1), "served after {took:?}");

    // The definition's status, as upstream sets it.
    let crd = json_of(&s, &["get", "crd", "crontabs.stable.example.com"]);
    let accepted = condition(&crd, "NamesAccepted");
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("True"), Some("NoConflicts"))
    );
    let established = condition(&crd, "Established");
    assert_eq!(
        (
            established["status"].as_str(),
            established["reason"].as_str()
        ),
        (Some("True"), Some("InitialNamesAccepted"))
    );
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"][0], "ct");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");

    // Its structural schema is in the OpenAPI documents: kubectl explain.
    let out = s.kubectl(&["explain", "crontabs.spec"]);
    assert_ok(&out, "explain crontabs.spec");
    assert!(stdout(&out).contains("cronSpec"), "{}", stdout(&out));

    // Discovery (aggregated for 1.33, legacy for 1.27).
    for v in [None, Some("1.27")] {
        let out = s.kubectl_v(
            v,
            &[
                "api-resources",
                "--api-group=stable.example.com",
                "-o",
                "wide",
            ],
        );
        assert_ok(&out, ("api-resources", v));
        let line = stdout(&out)
            .lines()
            .find(|l| l.starts_with("crontabs"))
            .map(String::from);
        let line = line.unwrap_or_else(|| panic!("{v:?}: no crontabs in {}", stdout(&out)));
        for want in ["ct", "stable.example.com/v1", "true", "CronTab", "stable"] {
            assert!(
                line.split_whitespace().any(|w| w.contains(want)),
                "{v:?}: {want} missing in {line}"
            );
        }
    }
    let legacy = raw(&s, "/apis/stable.example.com/v1");
    let names: Vec<&str> = legacy["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["crontabs", "crontabs/status", "crontabs/scale"]);
    let openapi = raw(&s, "/openapi/v3");
    assert!(
        openapi["paths"].get("apis/stable.example.com/v1").is_some(),
        "{openapi}"
    );

    // Create with defaults and pruning; the preserved field stays.
    assert_ok(
        &s.kubectl_stdin(None, &["apply", "-f", "-"], CRONTAB),
        "apply CR",
    );
    let ct = json_of(&s, &["get", "ct", "nightly"]);
    assert_eq!(ct["spec"]["replicas"], 1, "defaulted: {ct}");
    assert_eq!(ct["spec"]["image"], "nginx");
    assert_eq!(ct["spec"]["extra"]["anything"]["goes"], "here");
    assert_eq!(ct["metadata"]["generation"], 1);

    // Printer columns, by plural, short name and category.
    for what in ["crontabs", "ct", "stable"] {
        let out = s.ok(&["get", what]);
        assert_eq!(
            header(&out),
            ["NAME", "SPEC", "REPLICAS", "READY", "AGE"],
            "{what}: {out}"
        );
        assert!(
            out.contains("nightly") && out.contains("* * * * */5"),
            "{out}"
        );
    }

    // Apply again: a changed field and a removed one (client-side apply).
    let changed = CRONTAB
        .replace("\"* * * * */5\"", "\"0 * * * *\"")
        .replace("  extra: {anything: {goes: here}}\n", "  image: busybox\n");
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], &changed);
    assert_ok(&out, "re-apply");
    let ct = json_of(&s, &["get", "ct", "nightly"]);
    assert_eq!(ct["spec"]["cronSpec"], "0 * * * *");
    assert_eq!(ct["spec"]["image"], "busybox");
    assert!(
        ct["spec"].get("extra").is_none(),
        "removed field stays: {ct}"
    );
    assert_eq!(ct["metadata"]["generation"], 2);

    // Schema validation: 422 with upstream's wording.
    let bad = CRONTAB.replace("  extra: {anything: {goes: here}}\n", "  replicas: three\n");
    let out = s.kubectl_stdin(None, &["create", "-f", "-"], &bad.replace("nightly", "bad"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{}",
        stderr(&out)
    );
    let out = s.kubectl_stdin(
        None,
        &["create", "-f", "-"],
        &CRONTAB
            .replace("nightly", "toomany")
            .replace("  extra:", "  replicas: 11\n  extra:"),
    );
    assert!(stderr(&out).contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"), "{}", stderr(&out));
    let out = s.kubectl_stdin(
        None,
        &["create", "-f", "-"],
        &CRONTAB
            .replace("nightly", "nospec")
            .replace("* * * * */5", "bad"),
    );
    assert!(
        stderr(&out)
            .contains("spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match"),
        "{}",
        stderr(&out)
    );

    // Unknown fields: refused under kubectl's default Strict validation,
    // pruned with --validate=false.
    let unknown = CRONTAB
        .replace("name: nightly", "name: unknown")
        .replace("  extra:", "  bogus: 1\n  extra:");
    let out = s.kubectl_stdin(None, &["create", "-f", "-"], &unknown);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"unknown field "spec.bogus""#),
        "{}",
        stderr(&out)
    );
    assert_ok(
        &s.kubectl_stdin(None, &["create", "--validate=false", "-f", "-"], &unknown),
        "create unvalidated",
    );
    let ct = json_of(&s, &["get", "ct", "unknown"]);
    assert!(ct["spec"].get("bogus").is_none(), "not pruned: {ct}");
    let out = s.kubectl_stdin(
        None,
        &["create", "--validate=warn", "-f", "-"],
        &unknown.replace("name: unknown", "name: warned"),
    );
    assert_ok(&out, "create with warnings");
    assert!(
        stderr(&out).contains(r#"unknown field "spec.bogus""#),
        "{}",
        stderr(&out)
    );

    // Status subresource: status only through /status, generation unmoved.
    let status = r#"{"status":{"replicas":2,"selector":"tier=batch","conditions":[{"type":"Ready","status":"True"}]}}"#;
    s.ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    s.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":9}}"#,
    ]);
    let ct = json_of(&s, &["get", "ct", "nightly"]);
    assert_eq!(
        ct["status"]["replicas"], 2,
        "main endpoint changed status: {ct}"
    );
    assert_eq!(ct["metadata"]["generation"], 2);
    assert!(s
        .ok(&["get", "ct", "nightly"])
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains("True")));

    // Scale subresource.
    s.ok(&["scale", "ct", "nightly", "--replicas=5"]);
    let scale = raw(
        &s,
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    );
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "tier=batch");
    assert_eq!(
        json_of(&s, &["get", "ct", "nightly"])["metadata"]["generation"],
        3
    );
    let out = s.kubectl(&["scale", "ct", "nightly", "--replicas=50"]);
    assert!(
        !out.status.success() && stderr(&out).contains("should be less than or equal to 10"),
        "{}",
        stderr(&out)
    );

    // Strategic merge is for built-in kinds only.
    let out = s.kubectl(&[
        "patch",
        "ct",
        "nightly",
        "--type=strategic",
        "-p",
        r#"{"spec":{"image":"x"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("UnsupportedMediaType")
            || stderr(&out).contains("415")
            || stderr(&out).contains("unknown format"),
        "{}",
        stderr(&out)
    );

    // Selectors.
    let names = s.ok(&["get", "ct", "-l", "tier=batch", "-o", "name"]);
    assert!(
        names.contains("crontab.stable.example.com/nightly"),
        "{names}"
    );
    assert_eq!(
        s.ok(&["get", "ct", "-l", "tier=web", "-o", "name"]).trim(),
        ""
    );
    assert_eq!(
        s.ok(&[
            "get",
            "ct",
            "--field-selector",
            "metadata.name=unknown",
            "-o",
            "name"
        ])
        .trim(),
        "crontab.stable.example.com/unknown"
    );
    let out = s.kubectl(&["get", "ct", "--field-selector", "spec.image=x"]);
    assert!(
        !out.status.success() && stderr(&out).contains("field label not supported"),
        "{}",
        stderr(&out)
    );

    // kubectl edit with a scripted editor.
    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/image: busybox/image: alpine/' \"$1\"\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = s
        .kubectl_cmd(None)
        .env("KUBE_EDITOR", &editor)
        .args(["edit", "ct", "nightly"])
        .output()
        .expect("edit");
    assert_ok(&out, "edit");
    assert_eq!(
        json_of(&s, &["get", "ct", "nightly"])["spec"]["image"],
        "alpine"
    );

    // Errors: unknown kind 404, wrong apiVersion 400.
    let out = s.kubectl(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/nothings",
    ]);
    assert!(
        stderr(&out).contains("NotFound") || stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
    let wrong = r#"{"apiVersion":"stable.example.com/v2","kind":"CronTab","metadata":{"name":"wrong"},"spec":{"cronSpec":"* * * * *"}}"#;
    let out = s.kubectl_stdin(
        None,
        &[
            "create",
            "--raw",
            "/apis/stable.example.com/v1/namespaces/default/crontabs",
            "-f",
            "-",
        ],
        wrong,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match the expected API version"),
        "{}",
        stderr(&out)
    );

    s.ok(&["delete", "ct", "warned"]);
    assert!(!s.kubectl(&["get", "ct", "warned"]).status.success());

    // A deleted namespace takes its custom objects with it.
    s.ok(&["create", "namespace", "scratch"]);
    assert_ok(
        &s.kubectl_stdin(None, &["apply", "-n", "scratch", "-f", "-"], CRONTAB),
        "CR in scratch",
    );
    s.ok(&["delete", "namespace", "scratch", "--timeout=20s"]);
    assert_eq!(
        s.ok(&["get", "ct", "-n", "scratch", "-o", "name"]).trim(),
        ""
    );

    // Deleting the definition removes its objects, then the resource.
    s.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--wait=true",
        "--timeout=20s",
    ]);
    wait_until("crontabs gone", Duration::from_secs(10), || {
        let out = s.kubectl(&[
            "get",
            "--raw",
            "/apis/stable.example.com/v1/namespaces/default/crontabs",
        ]);
        !out.status.success() && stderr(&out).contains("NotFound")
    });
    // Recreated, nothing of the old objects is left.
    create_and_time(
        &s,
        CRONTAB_CRD,
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    );
    assert_eq!(s.ok(&["get", "ct", "-A", "-o", "name"]).trim(), "");
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: widgets, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, format: int32}
              port: {x-kubernetes-int-or-string: true}
"#;

#[test]
fn cluster_scoped_versions_conflicts_and_restart_with_kubectl_127() {
    let mut s = Server::start();
    let v127 = Some("1.27");
    create_and_time(&s, WIDGET_CRD, "/apis/example.com/v1/widgets");

    // Preferred version first; the object is stored at v1 and served at both.
    let group = raw(&s, "/apis/example.com");
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let widget = "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, port: http}\n";
    assert_ok(
        &s.kubectl_stdin(v127, &["apply", "-f", "-"], widget),
        "apply widget at v1beta1",
    );
    let v1 = raw(&s, "/apis/example.com/v1/widgets/w1");
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"]["size"], 3);
    let beta = raw(&s, "/apis/example.com/v1beta1/widgets/w1");
    assert_eq!(beta["apiVersion"], "example.com/v1beta1");
    let list = raw(&s, "/apis/example.com/v1beta1/widgets");
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["apiVersion"], "example.com/v1beta1");

    // Default columns; cluster scope.
    let out = s.kubectl_v(v127, &["get", "wd"]);
    assert_ok(&out, "get wd");
    assert_eq!(header(&stdout(&out)), ["NAME", "AGE"]);
    let out = s.kubectl_v(v127, &["api-resources", "--namespaced=false"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("widgets") && l.contains("wd")),
        "{}",
        stdout(&out)
    );

    // Formats and int-or-string.
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 3000000000, port: true}\n";
    let out = s.kubectl_stdin(v127, &["create", "-f", "-"], bad);
    let err = stderr(&out);
    assert!(
        err.contains("spec.size in body must be of type int32"),
        "{err}"
    );
    assert!(
        err.contains("spec.port in body must be of type integer or string"),
        "{err}"
    );

    // A plural another kind of the group already holds is not accepted.
    let clash = WIDGET_CRD
        .replace("widgets.example.com", "wd.example.com")
        .replace(
            "{plural: widgets, kind: Widget, shortNames: [wd]}",
            "{plural: wd, kind: Gadget}",
        );
    assert_ok(
        &s.kubectl_stdin(v127, &["create", "-f", "-"], &clash),
        "create clashing CRD",
    );
    wait_until("NamesAccepted False", Duration::from_secs(5), || {
        let crd = json_of(&s, &["get", "crd", "wd.example.com"]);
        condition(&crd, "NamesAccepted")["reason"] == "PluralConflict"
    });
    let crd = json_of(&s, &["get", "crd", "wd.example.com"]);
    assert_eq!(condition(&crd, "NamesAccepted")["status"], "False");
    assert_eq!(
        condition(&crd, "NamesAccepted")["message"],
        "\"wd\" is already in use"
    );
    assert_eq!(condition(&crd, "Established")["status"], "False");
    assert!(!s
        .kubectl(&["get", "--raw", "/apis/example.com/v1/wd"])
        .status
        .success());

    // Broken definitions are refused.
    let misnamed = WIDGET_CRD.replace("name: widgets.example.com", "name: gizmos.example.com");
    let out = s.kubectl_stdin(v127, &["create", "-f", "-"], &misnamed);
    assert!(stderr(&out).contains(r#"metadata.name: Invalid value: "gizmos.example.com": must be spec.names.plural+"."+spec.group"#), "{}", stderr(&out));
    let two_storage = WIDGET_CRD
        .replace("name: widgets.example.com", "name: things.example.com")
        .replace(
            "plural: widgets, kind: Widget, shortNames: [wd]",
            "plural: things, kind: Thing",
        )
        .replace("storage: false", "storage: true");
    let out = s.kubectl_stdin(v127, &["create", "-f", "-"], &two_storage);
    assert!(
        stderr(&out).contains("must have exactly one version marked as storage version"),
        "{}",
        stderr(&out)
    );
    let cel = WIDGET_CRD
        .replace("widgets.example.com", "rules.example.com")
        .replace(
            "{plural: widgets, kind: Widget, shortNames: [wd]}",
            "{plural: rules, kind: Rule}",
        )
        .replace(
            "size: {type: integer, format: int32}",
            "size: {type: integer, x-kubernetes-validations: [{rule: \"self > 0\"}]}",
        );
    let out = s.kubectl_stdin(v127, &["create", "-f", "-"], &cel);
    assert_ok(&out, "CRD with CEL rules");
    assert!(
        stderr(&out).contains("not enforced by this server"),
        "{}",
        stderr(&out)
    );
    let no_schema = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: bars.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {plural: bars, kind: Bar}\n  versions: [{name: v1, served: true, storage: true}]\n";
    let out = s.kubectl_stdin(v127, &["create", "-f", "-"], no_schema);
    assert!(
        stderr(&out).contains(
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
        ),
        "{}",
        stderr(&out)
    );

    // A restart serves the custom kind from the first request on.
    s.restart();
    let out = s.kubectl_v(v127, &["get", "widgets", "w1", "-o", "name"]);
    assert_ok(&out, "get after restart");
    assert_eq!(stdout(&out).trim(), "widget.example.com/w1");

    // An object with a finalizer holds its deleted CRD in Terminating,
    // where new objects are refused; releasing it lets both go.
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "crd", "widgets.example.com", "--wait=false"]);
    wait_until("w1 marked for deletion", Duration::from_secs(10), || {
        json_of(&s, &["get", "widget", "w1"])["metadata"]["deletionTimestamp"].is_string()
    });
    let crd = json_of(&s, &["get", "crd", "widgets.example.com"]);
    let terminating = condition(&crd, "Terminating");
    assert_eq!(terminating["status"], "True", "{crd}");
    assert_eq!(terminating["reason"], "InstanceDeletionInProgress");
    assert_eq!(
        crd["metadata"]["finalizers"][0],
        "customresourcecleanup.apiextensions.k8s.io"
    );
    let out = s.kubectl_stdin(
        v127,
        &["create", "-f", "-"],
        &widget.replace("w1", "w3").replace("v1beta1", "v1"),
    );
    assert!(
        stderr(&out).contains("create not allowed while custom resource definition is terminating"),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until("CRD removed", Duration::from_secs(10), || {
        !s.kubectl(&["get", "crd", "widgets.example.com"])
            .status
            .success()
    });
    assert!(!s
        .kubectl(&["get", "--raw", "/apis/example.com/v1/widgets"])
        .status
        .success());
}

/// A typed kube-rs client for the CronTab kind (what derive(CustomResource)
/// generates, written out).
mod typed {
    use std::borrow::Cow;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    pub struct CronTabSpec {
        pub cron_spec: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub image: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicas: Option<i64>,
    }

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CronTab {
        #[serde(default = "api_version")]
        pub api_version: String,
        #[serde(default = "kind")]
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: CronTabSpec,
    }

    fn api_version() -> String {
        "stable.example.com/v1".into()
    }

    fn kind() -> String {
        "CronTab".into()
    }

    impl kube::Resource for CronTab {
        type DynamicType = ();
        type Scope = kube::core::NamespaceResourceScope;

        fn kind(_: &()) -> Cow<'_, str> {
            "CronTab".into()
        }
        fn group(_: &()) -> Cow<'_, str> {
            "stable.example.com".into()
        }
        fn version(_: &()) -> Cow<'_, str> {
            "v1".into()
        }
        fn plural(_: &()) -> Cow<'_, str> {
            "crontabs".into()
        }
        fn meta(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_typed_crud_and_watch() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::runtime::{watcher, WatchStreamExt};
    use typed::{CronTab, CronTabSpec};

    let s = Server::start();
    create_and_time(
        &s,
        CRONTAB_CRD,
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    );
    let client = s.client().await;
    let api: Api<CronTab> = Api::namespaced(client, "default");

    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    let ct = CronTab {
        api_version: "stable.example.com/v1".into(),
        kind: "CronTab".into(),
        metadata: kube::api::ObjectMeta {
            name: Some("typed".into()),
            ..Default::default()
        },
        spec: CronTabSpec {
            cron_spec: "*/5 * * * *".into(),
            ..Default::default()
        },
    };
    let created = api
        .create(&PostParams::default(), &ct)
        .await
        .expect("create");
    assert_eq!(created.spec.replicas, Some(1), "defaulted");
    assert_eq!(created.spec.image.as_deref(), Some("nginx"));

    let seen = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("watch event in time")
        .expect("watch ok")
        .expect("an object");
    assert_eq!(seen.metadata.name.as_deref(), Some("typed"));

    let patched = api
        .patch(
            "typed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.spec.replicas, Some(4));
    let next = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("second event in time")
        .expect("watch ok")
        .expect("an object");
    assert_eq!(next.spec.replicas, Some(4));

    let err = api
        .patch(
            "typed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect_err("below minimum");
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422);
            assert_eq!(e.reason, "Invalid");
        }
        other => panic!("{other}"),
    }

    let list = api
        .list(&ListParams::default().labels("missing=label"))
        .await
        .expect("list");
    assert!(list.items.is_empty());
    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    api.delete("typed", &DeleteParams::default())
        .await
        .expect("delete");
    match api.get("typed").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("still there: {other:?}"),
    }
}
