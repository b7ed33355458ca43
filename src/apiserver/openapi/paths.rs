//! The `paths` of the OpenAPI documents: the operations on each served
//! kind, with their group-version-kind and parameters. kubectl reads them to
//! learn that the server validates fields itself (`fieldValidation`), and
//! then leaves `kubectl create/apply -f` validation to the server.

use serde_json::{json, Map, Value};

use super::schemas::{REF_V2, REF_V3};
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

/// The definitions of a kind and of its list, the bodies of its
/// operations; None where no definition is known.
#[derive(Clone, Copy)]
pub struct Bodies<'a> {
    pub object: Option<&'a str>,
    pub list: Option<&'a str>,
}

const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

fn reference(name: &str, v3: bool) -> Value {
    let prefix = if v3 { REF_V3 } else { REF_V2 };
    json!({ "$ref": format!("{prefix}{name}") })
}

/// The operation on a kind: its identity, query parameters, request body
/// (`request` definition, under the given media types in OpenAPI 3) and
/// response (`response` definition).
struct Op<'a> {
    action: &'a str,
    id: String,
    params: &'a [&'a str],
    request: Option<(&'a str, &'a [&'a str])>,
    response: Option<&'a str>,
}

fn op(info: &Kind, o: Op, v3: bool) -> Value {
    let mut params: Vec<Value> = o
        .params
        .iter()
        .map(|p| {
            if v3 {
                query_param(p)
            } else {
                query_param_v2(p)
            }
        })
        .collect();
    let mut ok = json!({ "description": "OK" });
    if let Some(r) = o.response {
        if v3 {
            ok["content"] = json!({ "application/json": { "schema": reference(r, true) } });
        } else {
            ok["schema"] = reference(r, false);
        }
    }
    let mut out = json!({
        "operationId": o.id,
        "x-kubernetes-action": o.action,
        "x-kubernetes-group-version-kind": { "group": info.group, "version": info.version, "kind": info.kind },
        "responses": { "200": ok, "401": { "description": "Unauthorized" } },
    });
    if let Some((body, media_types)) = o.request {
        if v3 {
            let content: Map<String, Value> = media_types
                .iter()
                .map(|m| (m.to_string(), json!({ "schema": reference(body, true) })))
                .collect();
            out["requestBody"] = json!({ "required": true, "content": content });
        } else {
            params.push(json!({ "name": "body", "in": "body", "required": true, "schema": reference(body, false) }));
        }
    }
    out["parameters"] = Value::Array(params);
    out
}

fn write_params() -> &'static [&'static str] {
    &["dryRun", "fieldManager", "fieldValidation", "pretty"]
}

pub fn add_paths(paths: &mut Map<String, Value>, info: &Kind, bodies: Bodies, v3: bool) {
    let id = format!("{}{}", info.plural, info.version);
    let whole: &[&str] = &["*/*"];
    let patches: &[&str] = &[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let object = bodies.object;
    let with_object = |types| object.map(|o| (o, types));
    for (collection, item) in paths_of(info) {
        let list = Op {
            action: "list",
            id: format!("list{id}"),
            params: &[
                "labelSelector",
                "fieldSelector",
                "limit",
                "continue",
                "resourceVersion",
                "watch",
                "timeoutSeconds",
            ],
            request: None,
            response: bodies.list,
        };
        let mut c = json!({ "get": op(info, list, v3) });
        if !item.is_empty() {
            let create = Op {
                action: "post",
                id: format!("create{id}"),
                params: write_params(),
                request: with_object(whole),
                response: object,
            };
            c["post"] = op(info, create, v3);
            let delete_all = Op {
                action: "deletecollection",
                id: format!("deletecollection{id}"),
                params: &["labelSelector", "fieldSelector", "dryRun"],
                request: Some((DELETE_OPTIONS, whole)),
                response: Some(STATUS),
            };
            c["delete"] = op(info, delete_all, v3);
            let read = Op {
                action: "get",
                id: format!("read{id}"),
                params: &[],
                request: None,
                response: object,
            };
            let replace = Op {
                action: "put",
                id: format!("replace{id}"),
                params: write_params(),
                request: with_object(whole),
                response: object,
            };
            let patch = Op {
                action: "patch",
                id: format!("patch{id}"),
                params: &[
                    "dryRun",
                    "fieldManager",
                    "fieldValidation",
                    "force",
                    "pretty",
                ],
                request: Some((PATCH, patches)),
                response: object,
            };
            let delete = Op {
                action: "delete",
                id: format!("delete{id}"),
                params: &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                request: Some((DELETE_OPTIONS, whole)),
                response: Some(STATUS),
            };
            let i = json!({
                "get": op(info, read, v3),
                "put": op(info, replace, v3),
                "patch": op(info, patch, v3),
                "delete": op(info, delete, v3),
            });
            paths.insert(item, i);
        }
        paths.insert(collection, c);
    }
}
