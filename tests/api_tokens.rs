//! Service account tokens: the TokenRequest API (`kubectl create token`),
//! bearer authentication with the tokens it issues, and the
//! `kube-api-access-*` volume ServiceAccount admission adds to new pods.

mod common;

use std::time::Duration;

use common::{wait_until, Server};
use serde_json::Value;

fn create_token(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    s.ok(&all).trim().to_string()
}

fn fails_with(s: &Server, args: &[&str], message: &str) {
    let out = s.kubectl(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(message), "{args:?}: {err}");
}

/// The HTTP status of a GET with `token` as bearer.
async fn status_with(s: &Server, token: &str, path: &str) -> u16 {
    s.http()
        .get(format!("{}{path}", s.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn token_requests_issue_tokens_the_api_accepts() {
    let s = Server::start();
    wait_until(
        "the default service account",
        Duration::from_secs(20),
        || s.kubectl(&["get", "sa", "default"]).status.success(),
    );
    let sa_path = "/api/v1/namespaces/default/serviceaccounts/default";

    let token = create_token(&s, &["default"]);
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:default:default");
    assert_eq!(c["aud"][0], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(status_with(&s, &token, sa_path).await, 200);
    assert_eq!(status_with(&s, "not-a-token", sa_path).await, 401);
    let mut tampered = token.clone();
    tampered.insert(token.len() - 3, 'x');
    assert_eq!(status_with(&s, &tampered, sa_path).await, 401);

    // Another audience's token is not one for this API server.
    let vault = create_token(&s, &["default", "--audience", "vault", "--duration", "20m"]);
    assert_eq!(claims(&vault)["aud"][0], "vault");
    assert_eq!(
        claims(&vault)["exp"].as_i64().unwrap() - claims(&vault)["iat"].as_i64().unwrap(),
        1200
    );
    assert_eq!(status_with(&s, &vault, sa_path).await, 401);

    // Upstream's errors.
    fails_with(
        &s,
        &["create", "token", "default", "--duration", "5m"],
        "may not specify a duration less than 10 minutes",
    );
    fails_with(
        &s,
        &["create", "token", "nobody"],
        "serviceaccounts \"nobody\" not found",
    );
    fails_with(
        &s,
        &[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "ghost",
        ],
        "pods \"ghost\" not found",
    );

    // A token dies with its service account, and with the object it is
    // bound to.
    s.ok(&["create", "sa", "robot"]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "anchor",
        "--from-literal=k=v",
    ]);
    let robot = create_token(&s, &["robot"]);
    let bound = create_token(
        &s,
        &[
            "robot",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "anchor",
        ],
    );
    assert_eq!(claims(&bound)["kubernetes.io"]["secret"]["name"], "anchor");
    assert_eq!(status_with(&s, &bound, sa_path).await, 200);
    s.ok(&["delete", "secret", "anchor"]);
    assert_eq!(status_with(&s, &bound, sa_path).await, 401);
    assert_eq!(status_with(&s, &robot, sa_path).await, 200);
    s.ok(&["delete", "sa", "robot"]);
    assert_eq!(status_with(&s, &robot, sa_path).await, 401);
    // A new account of the same name is someone else.
    s.ok(&["create", "sa", "robot"]);
    assert_eq!(status_with(&s, &robot, sa_path).await, 401);
}

#[test]
fn new_pods_get_the_api_access_volume_unless_opted_out() {
    let s = Server::start();
    wait_until(
        "the default service account",
        Duration::from_secs(20),
        || s.kubectl(&["get", "sa", "default"]).status.success(),
    );
    s.ok(&["create", "sa", "quiet"]);
    s.ok(&[
        "patch",
        "sa",
        "quiet",
        "-p",
        r#"{"automountServiceAccountToken": false}"#,
    ]);
    let manifest = r#"
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  initContainers: [{name: init, image: kone.test/busybox:1}]
  containers: [{name: c, image: kone.test/busybox:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: optout}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: kone.test/busybox:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  serviceAccountName: quiet
  containers: [{name: c, image: kone.test/busybox:1}]
"#;
    let out = s.kubectl_stdin(None, &["create", "-f", "-"], manifest);
    common::assert_ok(&out, "create pods");
    let get = |name: &str| -> Value {
        serde_json::from_str(&s.ok(&["get", "pod", name, "-o", "json"])).expect("json")
    };
    let plain = get("plain");
    let vol = &plain["spec"]["volumes"][0];
    let name = vol["name"].as_str().unwrap();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == "kube-api-access-".len() + 5,
        "{name}"
    );
    assert_eq!(vol["projected"]["defaultMode"], 420);
    let sources = &vol["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    for list in ["initContainers", "containers"] {
        let m = &plain["spec"][list][0]["volumeMounts"][0];
        assert_eq!(m["name"], name);
        assert_eq!(
            m["mountPath"],
            "/var/run/secrets/kubernetes.io/serviceaccount"
        );
        assert_eq!(m["readOnly"], true);
    }
    for name in ["optout", "quiet"] {
        let p = get(name);
        assert!(p["spec"].get("volumes").is_none(), "{name}: {}", p["spec"]);
        assert!(p["spec"]["containers"][0].get("volumeMounts").is_none());
    }
}
