//! The OpenAPI documents, read by the real kubectl 1.33 and 1.27: `kubectl
//! explain` (OpenAPI v3, and v2 protobuf), validation of manifests under
//! kubectl's default flags, and the documents' shape.

mod common;

use common::{assert_ok, Server, TEST_TOKEN};
use serde_json::Value;

const VERSIONS: [&str; 2] = ["1.33", "1.27"];

fn explain(s: &Server, version: &str, args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let out = s.kubectl_v(Some(version), &all);
    assert_ok(&out, (version, &all));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn raw(s: &Server, path: &str) -> Value {
    let body = s.ok(&["get", "--raw", path]);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn explain_prints_field_docs_with_both_kubectl_versions() {
    let s = Server::start();
    for v in VERSIONS {
        let out = explain(&s, v, &["pods.spec.containers"]);
        assert!(out.contains("KIND:       Pod"), "{v}: {out}");
        assert!(
            out.contains("FIELD: containers <[]Container>"),
            "{v}: {out}"
        );
        assert!(
            out.contains("List of containers belonging to the pod."),
            "{v}: {out}"
        );
        assert!(out.contains("  image\t<string>"), "{v}: {out}");
        assert!(out.contains("Container image name."), "{v}: {out}");
        assert!(out.contains("  name\t<string> -required-"), "{v}: {out}");

        let out = explain(&s, v, &["svc.spec.ports.port"]);
        assert!(out.contains("FIELD: port <integer>"), "{v}: {out}");
        assert!(
            out.contains("The port that will be exposed by this service."),
            "{v}: {out}"
        );
        let out = explain(&s, v, &["svc.spec.ports.targetPort"]);
        assert!(
            out.contains("FIELD: targetPort <IntOrString>"),
            "{v}: {out}"
        );

        let out = explain(&s, v, &["pods.spec.containers.resources"]);
        assert!(
            out.contains("  limits\t<map[string]Quantity>"),
            "{v}: {out}"
        );
        assert!(
            out.contains("Limits describes the maximum amount"),
            "{v}: {out}"
        );

        // A field that does not exist is the user's error.
        let out = s.kubectl_v(Some(v), &["explain", "pods.spec.nope"]);
        assert!(!out.status.success(), "{v}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("field \"nope\" does not exist"), "{v}: {err}");
    }
}

#[test]
fn explain_recursive_prints_nested_fields() {
    let s = Server::start();
    for v in VERSIONS {
        let out = explain(&s, v, &["deploy", "--recursive"]);
        assert!(out.contains("GROUP:      apps"), "{v}: {out}");
        assert!(out.contains("KIND:       Deployment"), "{v}: {out}");
        for nested in [
            "\n  spec\t<DeploymentSpec>\n",
            "\n    template\t<PodTemplateSpec> -required-\n",
            "\n        containers\t<[]Container> -required-\n",
            "\n          livenessProbe\t<Probe>\n",
            "\n  status\t<DeploymentStatus>\n",
        ] {
            assert!(out.contains(nested), "{v}: {nested:?} not in\n{out}");
        }
        // Resource metadata is not required, unlike in k8s-openapi's types.
        assert!(out.contains("\n  metadata\t<ObjectMeta>\n"), "{v}: {out}");
    }
}

#[test]
fn explain_from_the_v2_protobuf_document() {
    let s = Server::start();
    for v in VERSIONS {
        let out = explain(
            &s,
            v,
            &["--output=plaintext-openapiv2", "pods.spec.containers.ports"],
        );
        assert!(out.contains("RESOURCE: ports <[]Object>"), "{v}: {out}");
        assert!(
            out.contains("containerPort\t<integer> -required-"),
            "{v}: {out}"
        );
    }
}

const MISSPELLED: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  foo: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"#;

#[test]
fn unknown_fields_fail_under_default_validation() {
    let s = Server::start();
    for v in VERSIONS {
        for verb in ["apply", "create"] {
            let name = format!("bad-{verb}-{}", v.replace('.', ""));
            let manifest = MISSPELLED.replace("NAME", &name);
            let out = s.kubectl_stdin(Some(v), &[verb, "-f", "-"], &manifest);
            assert!(!out.status.success(), "{v} {verb}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(r#"strict decoding error: unknown field "spec.foo""#),
                "{v} {verb}: {err}"
            );
            let out = s.kubectl(&["get", "deploy", &name]);
            assert!(!out.status.success(), "{v} {verb}: created anyway");

            let out = s.kubectl_stdin(Some(v), &[verb, "--validate=false", "-f", "-"], &manifest);
            assert_ok(&out, (v, verb, "--validate=false"));
            s.ok(&["get", "deploy", &name]);
        }
    }
}

#[test]
fn v3_index_and_documents_cover_every_served_kind() {
    let s = Server::start();
    let root = raw(&s, "/openapi/v3");
    let paths = root["paths"].as_object().expect("paths");
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        assert!(paths.contains_key(gv), "{gv} not in {paths:?}");
    }
    for (gv, entry) in paths {
        let url = entry["serverRelativeURL"].as_str().expect("url");
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
        let doc = raw(&s, url);
        assert_eq!(doc["openapi"], "3.0.0", "{gv}");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        // Every kind an operation works on has a schema tagged with it.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let gvk = &item["get"]["x-kubernetes-group-version-kind"];
            let tagged = schemas.values().any(|d| {
                d["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(gvk))
            });
            assert!(tagged, "{gv}: no schema for {gvk} ({path})");
        }
        // References resolve within the document.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let name = r.split('"').next().unwrap_or("");
            let name = name.strip_prefix("#/components/schemas/").expect(name);
            assert!(schemas.contains_key(name), "{gv}: dangling {name}");
        }
    }
    let apps = raw(&s, "/openapi/v3/apis/apps/v1");
    let spec = &apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
    let containers = &spec["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
}

#[test]
fn v2_json_document_has_definitions() {
    let s = Server::start();
    let doc = raw(&s, "/openapi/v2");
    assert_eq!(doc["swagger"], "2.0");
    let defs = doc["definitions"].as_object().expect("definitions");
    let pod = &defs["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        serde_json::json!([{ "group": "", "version": "v1", "kind": "Pod" }])
    );
    assert_eq!(
        pod["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    let deploy_list = &defs["io.k8s.api.apps.v1.DeploymentList"];
    assert_eq!(
        deploy_list["properties"]["items"]["items"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.Deployment"
    );
    assert!(defs["io.k8s.api.core.v1.Container"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("A single application container")));
}

#[tokio::test]
async fn v3_documents_are_cached_by_hash_and_etag() {
    let s = Server::start();
    let root = raw(&s, "/openapi/v3");
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url")
        .to_string();
    let hash = url.rsplit('=').next().expect("hash").to_string();
    let pem = std::fs::read(s.data_dir().join("server/tls/server-ca.crt")).expect("CA");
    kone::identity::install_crypto_provider();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |path: String| {
        http.get(format!("{}{path}", s.url()))
            .bearer_auth(TEST_TOKEN)
    };

    let pinned = get(url.clone()).send().await.expect("pinned");
    assert_eq!(pinned.status(), 200);
    let h = pinned.headers();
    assert_eq!(h["etag"], format!("\"{hash}\"").as_str());
    assert!(h["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("immutable"));

    let unpinned = get("/openapi/v3/api/v1".into())
        .send()
        .await
        .expect("unpinned");
    assert_eq!(unpinned.status(), 200);
    assert_eq!(unpinned.headers()["cache-control"], "no-cache, private");

    let stale = get("/openapi/v3/api/v1?hash=0123".into())
        .send()
        .await
        .expect("stale");
    assert_eq!(stale.status(), 301);
    assert_eq!(stale.headers()["location"], url.as_str());

    let revalidated = get("/openapi/v3/api/v1".into())
        .header("If-None-Match", format!("\"{hash}\""))
        .send()
        .await
        .expect("conditional");
    assert_eq!(revalidated.status(), 304);

    let missing = get("/openapi/v3/apis/nope.example.com/v1".into())
        .send()
        .await
        .expect("missing");
    assert_eq!(missing.status(), 404);
}
