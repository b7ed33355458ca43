//! The scale subresource: an autoscaling/v1 Scale view of spec.replicas.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::patch::PatchType;
use super::read::fetch_with_rev;
use super::update::{write, Fields, Mode};
use super::{json, Request};
use crate::api::registry::ResourceInfo;
use crate::apiserver::body;
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};

/// A label selector object as the string form Scale.status.selector uses.
fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// Where a kind keeps its replica counts and selector, as JSON pointers.
struct Paths {
    spec_replicas: String,
    status_replicas: String,
    /// Built-in kinds: a label selector object (or map) at /spec/selector.
    /// Custom resources: a string selector at the CRD's labelSelectorPath.
    selector: Option<String>,
}

/// `.spec.replicas` as the pointer `/spec/replicas`.
fn pointer(json_path: &str) -> String {
    json_path.replace('.', "/")
}

impl Paths {
    fn of(info: &ResourceInfo) -> Paths {
        match info.custom.as_ref().and_then(|c| c.scale.as_ref()) {
            Some(s) => Paths {
                spec_replicas: pointer(&s.spec_replicas),
                status_replicas: pointer(&s.status_replicas),
                selector: s.label_selector.as_deref().map(pointer),
            },
            None => Paths {
                spec_replicas: "/spec/replicas".into(),
                status_replicas: "/status/replicas".into(),
                selector: None,
            },
        }
    }
}

fn selector_of(info: &ResourceInfo, paths: &Paths, obj: &Value) -> String {
    if info.custom.is_some() {
        return paths
            .selector
            .as_deref()
            .and_then(|p| obj.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    match obj.pointer("/spec/selector") {
        Some(Value::Object(m))
            if m.contains_key("matchLabels") || m.contains_key("matchExpressions") =>
        {
            selector_string(&Value::Object(m.clone()))
        }
        // ReplicationControllers select with a plain map.
        Some(Value::Object(m)) => selector_string(&json!({ "matchLabels": m })),
        _ => String::new(),
    }
}

fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let meta = object::meta(obj).cloned().unwrap_or_default();
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let paths = Paths::of(info);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": { "replicas": obj.pointer(&paths.spec_replicas).cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": obj.pointer(&paths.status_replicas).cloned().unwrap_or(json!(0)),
            "selector": selector_of(info, &paths, obj),
        },
    })
}

pub async fn get(req: Request<'_>) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let (obj, _) = fetch_with_rev(&req, &name).await?;
    Ok(json(StatusCode::OK, &scale_of(&req.target.info, &obj)))
}

/// Apply a desired Scale to the object; a resourceVersion in it is a precondition.
async fn apply_scale(
    req: &Request<'_>,
    old: &Value,
    rev: i64,
    scale: &Value,
) -> ApiResult<Response> {
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        if !rv.is_empty() && object::parse_rv(rv) != Some(rev) {
            return Err(ApiError::conflict(info, &name));
        }
    }
    let replicas = match scale.pointer("/spec/replicas") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => n.clone(),
        Some(Value::Null) | None => serde_json::Number::from(0),
        _ => {
            let errors = [crate::apiserver::admission::validation::FieldError {
                field: "spec.replicas".into(),
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    scale
                        .pointer("/spec/replicas")
                        .cloned()
                        .unwrap_or(Value::Null)
                ),
            }];
            return Err(ApiError::invalid("Scale", "autoscaling", &name, &errors));
        }
    };
    let mut new = old.clone();
    set_at(
        &mut new,
        &Paths::of(info).spec_replicas,
        Value::Number(replicas),
    );
    let written = write(req, old, new, rev, Mode::Main, Fields::Update).await?;
    Ok(json(StatusCode::OK, &scale_of(info, &written)))
}

/// Set the value at a JSON pointer, creating the objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    for key in pointer.split('/').filter(|k| !k.is_empty()) {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = &mut cur[key];
    }
    *cur = value;
}

pub async fn put(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let bytes = body::read(body).await?;
    let scale = body::decode(&req.headers, &bytes)?;
    let (old, rev) = fetch_with_rev(&req, &name).await?;
    apply_scale(&req, &old, rev, &scale).await
}

pub async fn patch(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let kind = PatchType::from_headers(&req.headers)?;
    let bytes = body::read(body).await?;
    let (old, rev) = fetch_with_rev(&req, &name).await?;
    let scale = kind.apply(&scale_of(&req.target.info, &old), &bytes)?;
    apply_scale(&req, &old, rev, &scale).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_strings() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(selector_string(&s), "app=web,tier in (a,b)");
    }
}
