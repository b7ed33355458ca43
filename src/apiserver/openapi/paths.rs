//! The `paths` of the OpenAPI documents: the operations on each served
//! kind, with their group-version-kind and parameters. kubectl reads them to
//! learn that the server validates fields itself (`fieldValidation`), and
//! then leaves `kubectl create/apply -f` validation to the server.

use serde_json::{json, Map, Value};

use super::Kind;

/// Path templates of a resource: (collection path, item path).
fn paths_of(info: &Kind) -> Vec<(String, String)> {
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let mut out = Vec::new();
    if info.namespaced {
        out.push((
            format!("{base}/namespaces/{{namespace}}/{}", info.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", info.plural),
        ));
        // The all-namespaces list has no item path.
        out.push((format!("{base}/{}", info.plural), String::new()));
    } else {
        out.push((
            format!("{base}/{}", info.plural),
            format!("{base}/{}/{{name}}", info.plural),
        ));
    }
    out
}

fn query_param(name: &str) -> Value {
    json!({ "name": name, "in": "query", "uniqueItems": true, "schema": { "type": "string" } })
}

fn query_param_v2(name: &str) -> Value {
    json!({ "name": name, "in": "query", "uniqueItems": true, "type": "string" })
}

fn op(info: &Kind, action: &str, id: &str, params: &[&str], v3: bool) -> Value {
    let params: Vec<Value> = params
        .iter()
        .map(|p| {
            if v3 {
                query_param(p)
            } else {
                query_param_v2(p)
            }
        })
        .collect();
    let mut o = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": info.group, "version": info.version, "kind": info.kind },
        "parameters": params,
        "responses": { "200": { "description": "OK" }, "401": { "description": "Unauthorized" } },
    });
    if action == "patch" {
        o["requestBody"] = json!({ "content": {
            "application/json-patch+json": { "schema": { "type": "object" } },
            "application/merge-patch+json": { "schema": { "type": "object" } },
        }});
    }
    if !v3 {
        if let Some(o) = o.as_object_mut() {
            o.remove("requestBody");
        }
    }
    o
}

fn write_params() -> &'static [&'static str] {
    &["dryRun", "fieldManager", "fieldValidation", "pretty"]
}

pub fn add_paths(paths: &mut Map<String, Value>, info: &Kind, v3: bool) {
    let id = format!("{}{}", info.plural, info.version);
    for (collection, item) in paths_of(info) {
        let mut c = json!({
            "get": op(info, "list", &format!("list{id}"), &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "timeoutSeconds"], v3),
        });
        if !item.is_empty() {
            c["post"] = op(info, "post", &format!("create{id}"), write_params(), v3);
            c["delete"] = op(
                info,
                "deletecollection",
                &format!("deletecollection{id}"),
                &["labelSelector", "fieldSelector", "dryRun"],
                v3,
            );
            let i = json!({
                "get": op(info, "get", &format!("read{id}"), &[], v3),
                "put": op(info, "put", &format!("replace{id}"), write_params(), v3),
                "patch": op(info, "patch", &format!("patch{id}"), &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"], v3),
                "delete": op(info, "delete", &format!("delete{id}"), &["dryRun", "gracePeriodSeconds", "propagationPolicy"], v3),
            });
            paths.insert(item, i);
        }
        paths.insert(collection, c);
    }
}
