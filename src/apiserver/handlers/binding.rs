//! pods/binding: assigning a pod to a node (what a scheduler posts).

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::read::fetch_with_rev;
use super::update::{write, Mode};
use super::{json, Request};
use crate::apiserver::admission::validation::FieldError;
use crate::apiserver::body;
use crate::apiserver::object::{self, meta_mut};
use crate::apiserver::status::{ApiError, ApiResult};

/// Upstream's conflict on the binding subresource, with its reason.
fn refused(name: &str, why: String) -> ApiError {
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
    );
    e.details = Some(json!({ "name": name, "kind": "pods/binding" }));
    e
}

fn invalid(name: &str, field: &str, reason: &'static str, message: String) -> ApiError {
    let errors = [FieldError {
        field: field.into(),
        reason,
        message,
    }];
    ApiError::invalid("Binding", "", name, &errors)
}

/// `old` with the binding applied: spec.nodeName, the binding's
/// annotations and PodScheduled=True, or why it cannot be bound.
fn bind(old: &Value, name: &str, node: &str, binding: &Value) -> ApiResult<Value> {
    if object::is_deleting(old) {
        return Err(refused(
            name,
            format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let bound = old
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound.is_empty() {
        return Err(refused(
            name,
            format!("pod {name} is already assigned to node \"{bound}\""),
        ));
    }
    if old
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(refused(
            name,
            format!("pod {name} has non-empty .spec.schedulingGates"),
        ));
    }
    let mut new = old.clone();
    new["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let meta = meta_mut(&mut new);
        let target = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(t) = target.as_object_mut() {
            for (k, v) in annotations {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    set_scheduled(&mut new);
    Ok(new)
}

/// PodScheduled=True, replacing a False one (with its reason and message)
/// as upstream's UpdatePodCondition does.
fn set_scheduled(pod: &mut Value) {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let conditions = pod["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(list)) = conditions else {
        return;
    };
    let now = object::now_rfc3339();
    let fresh = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => *c = fresh,
        None => list.push(fresh),
    }
}

pub async fn create(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let bytes = body::read(body).await?;
    let binding = body::decode(&req.headers, &bytes)?;
    if object::name(&binding).unwrap_or("") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        return Err(invalid(
            &name,
            "target.kind",
            "FieldValueNotSupported",
            format!("Unsupported value: \"{kind}\": supported values: \"Node\", \"<empty>\""),
        ));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Err(invalid(
            &name,
            "target.name",
            "FieldValueRequired",
            "Required value".into(),
        ));
    }
    let (old, rev) = fetch_with_rev(&req, &name).await?;
    let want_uid = object::meta_str(&binding, "uid").unwrap_or("");
    if !want_uid.is_empty() && want_uid != object::uid(&old) {
        return Err(refused(
            &name,
            format!(
                "Precondition failed: UID in precondition: {want_uid}, UID in object meta: {}",
                object::uid(&old)
            ),
        ));
    }
    let want_rv = object::meta_str(&binding, "resourceVersion").unwrap_or("");
    if !want_rv.is_empty() && object::parse_rv(want_rv) != Some(rev) {
        return Err(ApiError::conflict(&req.target.info, &name));
    }
    let new = bind(&old, &name, node, &binding)?;
    write(&req, &old, new, rev, Mode::Binding).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": []}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]}})
    }

    #[test]
    fn binds_and_marks_scheduled() {
        let b =
            json!({"metadata": {"name": "p", "annotations": {"a": "b"}}, "target": {"name": "n1"}});
        let new = bind(&pod(), "p", "n1", &b).expect("binds");
        assert_eq!(new["spec"]["nodeName"], "n1");
        assert_eq!(new["metadata"]["annotations"]["a"], "b");
        let conds = new["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["status"], "True");
        assert!(conds[0].get("reason").is_none());
    }

    #[test]
    fn bound_pod_is_a_conflict() {
        let mut p = pod();
        p["spec"]["nodeName"] = json!("n0");
        let e = bind(&p, "p", "n1", &json!({})).expect_err("already bound");
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n0\""
        );
    }
}
