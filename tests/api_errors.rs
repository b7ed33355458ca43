//! Bad input gets the upstream-shaped Status (kind, code, reason) and the
//! server keeps serving afterwards. Raw HTTPS with the test bearer token.

mod common;

use std::time::{Duration, Instant};

use common::{Server, TEST_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

struct Api {
    http: reqwest::Client,
    base: String,
}

struct Reply {
    what: String,
    code: u16,
    body: Value,
    text: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            http: server.http(),
            base: server.url(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let what = format!("{method} {path}");
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TEST_TOKEN)
            .header("Accept", "application/json");
        if let Some(ct) = content_type {
            rb = rb.header("Content-Type", ct);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: transport error {e:?}"));
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            what,
            code,
            body,
            text,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }

    async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(
            method,
            path,
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn raw(&self, method: Method, path: &str, content_type: &str, body: &str) -> Reply {
        self.send(
            method,
            path,
            Some(content_type),
            Some(body.as_bytes().to_vec()),
        )
        .await
    }

    /// The server still answers: /readyz and a list.
    async fn still_serving(&self, after: &str) {
        // The next request usually reuses the same keep-alive connection:
        // a server that drops it after an error without `Connection: close`
        // makes this fail with a transport error (IncompleteMessage).
        let resp = self
            .http
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /readyz right after {after}: transport error {e:?}"));
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(code, 200, "/readyz after {after}: {text}");
        let r = self.get(CMS).await;
        assert_eq!(r.code, 200, "list configmaps after {after}: {}", r.text);
        assert_eq!(
            r.body["kind"], "ConfigMapList",
            "list after {after}: {}",
            r.text
        );
    }
}

impl Reply {
    /// Assert an upstream-shaped failure Status with this code and reason.
    fn status(&self, code: u16, reason: &str) -> &Value {
        let b = &self.body;
        assert_eq!(
            self.code, code,
            "{}: want HTTP {code} {reason}, got {}: {}",
            self.what, self.code, self.text
        );
        assert_eq!(
            b["kind"], "Status",
            "{}: body is not a Status: {}",
            self.what, self.text
        );
        assert_eq!(
            b["apiVersion"], "v1",
            "{}: Status apiVersion: {}",
            self.what, self.text
        );
        assert_eq!(
            b["status"], "Failure",
            "{}: Status.status: {}",
            self.what, self.text
        );
        assert_eq!(b["code"], code, "{}: Status.code: {}", self.what, self.text);
        assert_eq!(
            b["reason"], reason,
            "{}: Status.reason: {}",
            self.what, self.text
        );
        assert!(
            b["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: Status without a message: {}",
            self.what,
            self.text
        );
        b
    }

    fn ok(&self, code: u16) -> &Value {
        assert_eq!(
            self.code, code,
            "{}: want {code}, got {}: {}",
            self.what, self.code, self.text
        );
        &self.body
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}})
}

// ---------------------------------------------------------------- decoding

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies() {
    let server = tokio::task::block_in_place(Server::start);
    let api = Api::new(&server);

    // Malformed JSON.
    let r = api
        .raw(
            Method::POST,
            CMS,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"#,
        )
        .await;
    r.status(400, "BadRequest");
    api.still_serving("malformed JSON").await;

    // Malformed YAML.
    let r = api
        .raw(
            Method::POST,
            CMS,
            "application/yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n  labels: {a: \n",
        )
        .await;
    r.status(400, "BadRequest");
    api.still_serving("malformed YAML").await;

    // A Pod posted to the configmaps collection.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    let r = api.json(Method::POST, CMS, &pod).await;
    r.status(400, "BadRequest");
    api.still_serving("Pod body on configmaps").await;

    // An apps/v1 kind posted to a core URL.
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    });
    let r = api.json(Method::POST, CMS, &dep).await;
    r.status(400, "BadRequest");
    let r = api
        .json(Method::POST, "/api/v1/namespaces/default/pods", &dep)
        .await;
    r.status(400, "BadRequest");
    api.still_serving("apps/v1 body on a core URL").await;

    // Nothing of the above was stored.
    for (path, name) in [
        (CMS, "p"),
        (CMS, "d"),
        ("/api/v1/namespaces/default/pods", "d"),
    ] {
        let r = api.get(&format!("{path}/{name}")).await;
        r.status(404, "NotFound");
    }

    // A 4 MiB body.
    let big = "x".repeat(4 * 1024 * 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"big": big}});
    let r = api.json(Method::POST, CMS, &body).await;
    r.status(413, "RequestEntityTooLarge");
    api.still_serving("4 MiB body").await;
    let r = api.get(&format!("{CMS}/big")).await;
    r.status(404, "NotFound");
}

// ---------------------------------------------------------------- validation

#[tokio::test(flavor = "multi_thread")]
async fn invalid_objects() {
    let server = tokio::task::block_in_place(Server::start);
    let api = Api::new(&server);

    let r = api.json(Method::POST, CMS, &configmap("Not_Valid")).await;
    let b = r.status(422, "Invalid");
    assert_eq!(b["details"]["name"], "Not_Valid", "{}", r.text);
    assert_eq!(b["details"]["kind"], "ConfigMap", "{}", r.text);
    assert_eq!(
        b["details"]["causes"][0]["field"], "metadata.name",
        "{}",
        r.text
    );
    assert_eq!(
        b["details"]["causes"][0]["reason"], "FieldValueInvalid",
        "{}",
        r.text
    );
    api.still_serving("invalid name").await;

    // Deployment whose selector does not match its template labels.
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mismatch"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    });
    let r = api
        .json(
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            &dep,
        )
        .await;
    let b = r.status(422, "Invalid");
    assert_eq!(b["details"]["kind"], "Deployment", "{}", r.text);
    let fields: Vec<&str> = b["details"]["causes"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&"spec.template.metadata.labels"),
        "selector/labels mismatch should name spec.template.metadata.labels, causes: {}",
        r.text
    );
    api.still_serving("deployment selector mismatch").await;
}

// ---------------------------------------------------------------- routing

#[tokio::test(flavor = "multi_thread")]
async fn routing_and_methods() {
    let server = tokio::task::block_in_place(Server::start);
    let api = Api::new(&server);

    // Missing namespace.
    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces/nope/configmaps",
            &configmap("x"),
        )
        .await;
    let b = r.status(404, "NotFound");
    assert_eq!(b["message"], r#"namespaces "nope" not found"#, "{}", r.text);
    assert_eq!(b["details"]["name"], "nope", "{}", r.text);
    assert_eq!(b["details"]["kind"], "namespaces", "{}", r.text);
    api.still_serving("create in a missing namespace").await;

    // Unknown resources.
    for p in [
        "/api/v1/widgets",
        "/api/v1/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/apis/apps/v1/widgets",
    ] {
        let r = api.get(p).await;
        r.status(404, "NotFound");
    }
    api.still_serving("unknown resources").await;

    // Wrong method: PUT (and PATCH) on a collection.
    let r = api.json(Method::PUT, CMS, &configmap("x")).await;
    r.status(405, "MethodNotAllowed");
    let r = api
        .raw(
            Method::PATCH,
            CMS,
            "application/merge-patch+json",
            r#"{"data":{"a":"b"}}"#,
        )
        .await;
    r.status(405, "MethodNotAllowed");
    // POST on a named object.
    api.json(Method::POST, CMS, &configmap("named"))
        .await
        .ok(201);
    let r = api
        .json(Method::POST, &format!("{CMS}/named"), &configmap("named"))
        .await;
    r.status(405, "MethodNotAllowed");
    api.still_serving("wrong methods").await;
}

// ---------------------------------------------------------------- conflicts and patch types

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_and_media_types() {
    let server = tokio::task::block_in_place(Server::start);
    let api = Api::new(&server);

    let created = api.json(Method::POST, CMS, &configmap("twice")).await;
    let created = created.ok(201).clone();
    let r = api.json(Method::POST, CMS, &configmap("twice")).await;
    let b = r.status(409, "AlreadyExists");
    assert_eq!(b["details"]["name"], "twice", "{}", r.text);
    assert_eq!(b["details"]["kind"], "configmaps", "{}", r.text);
    api.still_serving("create twice").await;

    // Update with a stale resourceVersion.
    let mut fresh = created.clone();
    fresh["data"]["a"] = json!("c");
    let updated = api.json(Method::PUT, &format!("{CMS}/twice"), &fresh).await;
    updated.ok(200);
    let mut stale = created.clone();
    stale["data"]["a"] = json!("d");
    let r = api.json(Method::PUT, &format!("{CMS}/twice"), &stale).await;
    r.status(409, "Conflict");
    let now = api.get(&format!("{CMS}/twice")).await;
    assert_eq!(
        now.ok(200)["data"]["a"],
        "c",
        "the stale update must not be applied"
    );
    api.still_serving("stale update").await;

    // Unsupported patch content type.
    let r = api
        .raw(
            Method::PATCH,
            &format!("{CMS}/twice"),
            "text/plain",
            r#"{"data":{"a":"x"}}"#,
        )
        .await;
    r.status(415, "UnsupportedMediaType");
    api.still_serving("text/plain patch").await;

    // Selectors that do not parse, or name unsupported fields.
    let r = api.get(&format!("{CMS}?labelSelector=a%20in%20(")).await;
    r.status(400, "BadRequest");
    let r = api
        .get(&format!("{CMS}?labelSelector=a%20in%20(&watch=true"))
        .await;
    r.status(400, "BadRequest");
    let r = api
        .get(&format!("{CMS}?fieldSelector=spec.foo%3Dbar"))
        .await;
    r.status(400, "BadRequest");
    let r = api
        .get(&format!("{CMS}?fieldSelector=spec.foo%3Dbar&watch=true"))
        .await;
    r.status(400, "BadRequest");
    // The supported ones still work.
    let r = api
        .get(&format!("{CMS}?fieldSelector=metadata.name%3Dtwice"))
        .await;
    let items = r.ok(200)["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        items.len(),
        1,
        "fieldSelector=metadata.name=twice: {}",
        r.text
    );
    api.still_serving("bad selectors").await;
}

// ---------------------------------------------------------------- terminating namespace

#[tokio::test(flavor = "multi_thread")]
async fn terminating_namespace_refuses_new_content() {
    let server = tokio::task::block_in_place(Server::start);
    let api = Api::new(&server);

    api.json(
        Method::POST,
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await
    .ok(201);
    let held = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "data": {"a": "b"}
    });
    api.json(Method::POST, "/api/v1/namespaces/doomed/configmaps", &held)
        .await
        .ok(201);

    let r = api
        .send(Method::DELETE, "/api/v1/namespaces/doomed", None, None)
        .await;
    assert!(
        r.code == 200 || r.code == 202,
        "DELETE namespace: {} {}",
        r.code,
        r.text
    );

    let r = api.get("/api/v1/namespaces/doomed").await;
    let ns = r.ok(200);
    assert_eq!(
        ns["status"]["phase"], "Terminating",
        "namespace after DELETE: {}",
        r.text
    );
    assert!(
        ns["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        r.text
    );

    let r = api
        .json(
            Method::POST,
            "/api/v1/namespaces/doomed/configmaps",
            &configmap("late"),
        )
        .await;
    let b = r.status(403, "Forbidden");
    assert!(
        b["message"]
            .as_str()
            .unwrap_or("")
            .contains("being terminated"),
        "message should say the namespace is being terminated: {}",
        r.text
    );
    assert_eq!(
        b["details"]["causes"][0]["reason"], "NamespaceTerminating",
        "{}",
        r.text
    );
    api.still_serving("create in a terminating namespace").await;

    // Release the finalizer; the namespace controller finishes the job.
    let r = api
        .raw(
            Method::PATCH,
            "/api/v1/namespaces/doomed/configmaps/held",
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    r.ok(200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = api.get("/api/v1/namespaces/doomed").await;
        if r.code == 404 {
            r.status(404, "NotFound");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "namespace doomed still there 15 s after its last finalizer was removed: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = api.get("/api/v1/namespaces/doomed/configmaps/held").await;
    r.status(404, "NotFound");
    api.still_serving("namespace deletion").await;
}
