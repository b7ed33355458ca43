//! delete and deletecollection, with finalizers and graceful deletion.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::read::{fetch_with_rev, list_objects, render_one};
use super::update::{write, Fields, Mode};
use super::{json, Request};
use crate::api::crd::CLEANUP_FINALIZER;
use crate::api::registry::ResourceInfo;
use crate::apiserver::lifecycle::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::apiserver::object::{self, meta_mut};
use crate::apiserver::status::{success_status, ApiError, ApiResult};
use crate::apiserver::{body, ipalloc};

/// The parts of DeleteOptions this server acts on.
#[derive(Debug, Default, Clone)]
pub(super) struct DeleteOptions {
    grace_period: Option<i64>,
    precondition_uid: Option<String>,
    pub(super) precondition_rv: Option<String>,
    policy: Option<Propagation>,
}

/// How a delete treats the object's dependents (DeletionPropagation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
}

fn options(req: &Request<'_>, bytes: &[u8]) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions::default();
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        opts = options_from(&v)?;
    }
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        opts.grace_period = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(o) = req.query.get("orphanDependents") {
        opts.policy = Some(if o == "true" {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    if let Some(p) = req.query.get("propagationPolicy") {
        opts.policy = Some(check_policy(p)?);
    }
    Ok(opts)
}

/// DeleteOptions given as an object (a DELETE body, an Eviction's
/// deleteOptions).
pub(super) fn options_from(v: &Value) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        grace_period: v.get("gracePeriodSeconds").and_then(Value::as_i64),
        precondition_uid: v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        policy: None,
    };
    if let Some(orphan) = v.get("orphanDependents").and_then(Value::as_bool) {
        opts.policy = Some(if orphan {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
        if v.get("orphanDependents").is_some_and(|o| !o.is_null()) {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("propagationPolicy: Invalid value: {p:?}: orphanDependents and deletionPropagation cannot be both set"),
            ));
        }
        opts.policy = Some(check_policy(p)?);
    }
    if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
        if d.iter().any(|x| x.as_str() != Some("All")) {
            return Err(ApiError::bad_request(
                "Invalid dry run value. Only \"All\" is allowed",
            ));
        }
    }
    Ok(opts)
}

fn check_policy(p: &str) -> ApiResult<Propagation> {
    match p {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::new(
            422,
            "Invalid",
            format!("propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
        )),
    }
}

pub async fn delete(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let opts = options(&req, &bytes)?;
    let name = req.target.name.clone().unwrap_or_default();
    let (code, out) = delete_one(&req, &name, &opts).await?;
    render_one(&req, code, &out)
}

/// Delete one object: mark it (finalizers, graceful pods) or remove it.
pub(super) async fn delete_one(
    req: &Request<'_>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<(StatusCode, Value)> {
    let info = &*req.target.info;
    let dry_run = req.query.dry_run()?;
    let mut attempt = 0;
    loop {
        let (obj, rev) = fetch_with_rev(req, name).await?;
        if let Some(uid) = &opts.precondition_uid {
            if uid != object::uid(&obj) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&obj)
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if object::parse_rv(rv) != Some(rev) {
                return Err(ApiError::new(409, "Conflict", format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"
                )));
            }
        }

        let marked = mark_for_deletion(info, &obj, opts);
        let result = match marked {
            // Through the ordinary write, which removes the object instead
            // if nothing holds it any more.
            Some(new) => write(req, &obj, new, rev, Mode::Deletion, Fields::Update)
                .await
                .map(|w| (StatusCode::OK, w)),
            None if dry_run => Ok((StatusCode::OK, deleted_reply(info, name, &obj))),
            None => {
                let key = info.key(req.target.namespace.as_deref(), name);
                match req.state.store.delete(&key, Some(rev)).await {
                    Ok(_) => {
                        if info.kind == "Service" && info.group.is_empty() {
                            req.state.services.release(&ipalloc::held_by(&obj));
                        }
                        Ok((StatusCode::OK, deleted_reply(info, name, &obj)))
                    }
                    Err(e) => Err(ApiError::from_store(e, info, name)),
                }
            }
        };
        match result {
            Err(e) if e.reason == "Conflict" && opts.precondition_rv.is_none() && attempt < 5 => {
                attempt += 1
            }
            other => return other,
        }
    }
}

/// What an immediate delete answers: pods come back as the deleted object
/// (their storage returns it upstream, and clients such as the Python one
/// decode a Pod), everything else as a success Status.
fn deleted_reply(info: &ResourceInfo, name: &str, obj: &Value) -> Value {
    if info.kind == "Pod" && info.custom.is_none() {
        let mut gone = obj.clone();
        let m = meta_mut(&mut gone);
        if !m.contains_key("deletionTimestamp") {
            m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        }
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        return gone;
    }
    success_status(info, name, object::uid(obj))
}

/// The object with its deletion marked, or None to remove it right away.
fn mark_for_deletion(info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> Option<Value> {
    let kind = if info.custom.is_some() { "" } else { info.kind };
    let now = chrono::Utc::now();
    let already = object::is_deleting(obj);
    let mut new = obj.clone();
    // batch/v1 Jobs orphan their pods unless told otherwise, for
    // compatibility, as upstream; everything else deletes in background.
    let default = if kind == "Job" && info.group == "batch" {
        Propagation::Orphan
    } else {
        Propagation::Background
    };
    let finalizer = match opts.policy.unwrap_or(default) {
        Propagation::Foreground => Some(FOREGROUND_FINALIZER),
        Propagation::Orphan => Some(ORPHAN_FINALIZER),
        Propagation::Background => None,
    };
    // The garbage collector removes the finalizer once the dependents are
    // gone (foreground) or released (orphan); an object already being
    // deleted keeps the policy it was deleted with.
    let mut finalizers = object::finalizers(obj);
    if let Some(f) = finalizer.filter(|_| !already) {
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.to_string());
            meta_mut(&mut new).insert("finalizers".into(), json!(finalizers));
        }
    }
    if kind == "Pod" {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let grace = opts
            .grace_period
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        if bound && !terminal && grace > 0 {
            // The kubelet stops the containers, then removes the object.
            let current = object::meta(obj)
                .and_then(|m| m.get("deletionGracePeriodSeconds"))
                .and_then(Value::as_i64);
            if already && current.is_some_and(|c| c <= grace) {
                return Some(new);
            }
            let m = meta_mut(&mut new);
            m.insert(
                "deletionTimestamp".into(),
                json!((now + chrono::Duration::seconds(grace))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Some(new);
        }
    }
    let crd = kind == "CustomResourceDefinition";
    let held = !finalizers.is_empty() || kind == "Namespace" || crd;
    if !held {
        return None;
    }
    if crd && !already {
        crd_terminating(&mut new);
    }
    if !already {
        let m = meta_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if kind == "Namespace" {
            new["status"]["phase"] = json!("Terminating");
        }
    }
    Some(new)
}

/// A CRD is held until its objects are gone (upstream's cleanup
/// finalizer, which the CRD controller releases), and says so.
fn crd_terminating(crd: &mut Value) {
    let mut finalizers = object::finalizers(crd);
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.to_string());
        meta_mut(crd).insert("finalizers".into(), json!(finalizers));
    }
    crate::api::crd::set_condition(
        crd,
        "Terminating",
        true,
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    );
}

pub async fn delete_collection(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let opts = options(&req, &bytes)?;
    let (items, meta, _) = list_objects(&req).await?;
    let mut deleted = Vec::new();
    for item in items {
        let name = object::name(&item).unwrap_or("").to_string();
        let mut one = Request {
            state: req.state,
            user: req.user,
            target: req.target.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
        };
        one.target.name = Some(name.clone());
        one.target.namespace = object::namespace(&item)
            .map(String::from)
            .or(req.target.namespace.clone());
        match delete_one(&one, &name, &opts).await {
            Ok(_) => deleted.push(item),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let info = &*req.target.info;
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": meta,
            "items": deleted,
        }),
    ))
}
