//! OpenAPI v2 and v3 documents, derived from the resource registry.
//!
//! They carry the operations, their group-version-kind and parameters: what
//! kubectl reads to learn that the server validates fields itself
//! (`fieldValidation`), so `kubectl create/apply -f` work with default
//! validation. Schemas of the kinds come with the full OpenAPI work.

use serde_json::{json, Map, Value};

use crate::api::registry::{self, ResourceInfo};

/// Path templates of a resource: (collection path, item path).
fn paths_of(info: &ResourceInfo) -> Vec<(String, String)> {
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let mut out = Vec::new();
    if info.namespaced() {
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

fn op(info: &ResourceInfo, action: &str, id: &str, params: &[&str], v3: bool) -> Value {
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

fn add_paths(paths: &mut Map<String, Value>, info: &ResourceInfo, v3: bool) {
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

/// `/openapi/v2`: one Swagger 2.0 document for everything.
pub fn v2(version: &str) -> Value {
    let mut paths = Map::new();
    for info in registry::all() {
        add_paths(&mut paths, &info, false);
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": version },
        "paths": paths,
        "definitions": {},
    })
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn v3_root() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&p)) }),
        );
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
pub fn v3_group_version(path: &str, version: &str) -> Option<Value> {
    let (g, v) = group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)?;
    let mut paths = Map::new();
    for info in registry::all()
        .iter()
        .filter(|r| r.group == g && r.version == v)
    {
        add_paths(&mut paths, info, true);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": version },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

fn group_versions() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in registry::all() {
        let gv = (r.group.to_string(), r.version.to_string());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash per document, so clients may cache them.
fn hash(path: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{path}", env!("CARGO_PKG_VERSION")).as_bytes());
    hex::encode(&digest[..16]).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_patch_operations_declare_field_validation() {
        let doc = v3_group_version("apis/apps/v1", "v1.33.0").expect("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(v3_root()["paths"].get("api/v1").is_some());
    }
}
