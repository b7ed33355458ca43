//! update (PUT), and the write every change of a stored object goes through.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::create::with_warnings;
use super::read::{fetch_with_rev, render_one};
use super::Request;
use crate::apiserver::ipalloc;
use crate::apiserver::object::{self, meta_mut};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::{admit, body, custom, lifecycle, ssa};

pub async fn put(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    let bytes = body::read(body).await?;
    let (mut new, warnings) = admit::decode_object(info, &req.headers, &bytes, &req.query)?;
    match object::name(&new) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        None => {
            meta_mut(&mut new).insert("name".into(), json!(name));
        }
        _ => {}
    }
    if let Some(ns) = &req.target.namespace {
        match object::namespace(&new) {
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta_mut(&mut new).insert("namespace".into(), json!(ns));
            }
        }
    }
    let expected = match object::meta_str(&new, "resourceVersion") {
        Some(rv) => Some(
            object::parse_rv(rv)
                .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
        None => None,
    };
    // Without a resourceVersion the client asked for an unconditional
    // update: a writer that got in between is no conflict, so try again.
    let mut attempt = 0;
    loop {
        let (old, rev) = fetch_with_rev(&req, &name).await?;
        if expected.is_some_and(|e| e != rev) {
            return Err(ApiError::conflict(info, &name));
        }
        match write(&req, &old, new.clone(), rev, Mode::of(&req), Fields::Update).await {
            Err(e) if e.reason == "Conflict" && expected.is_none() && attempt < 5 => attempt += 1,
            Err(e) => return Err(e),
            Ok(written) => {
                return with_warnings(render_one(&req, StatusCode::OK, &written)?, &warnings)
            }
        }
    }
}

/// What part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The main resource: everything but status and server-owned metadata.
    Main,
    /// `/status`: only status.
    Status,
    /// `namespaces/NAME/finalize`: only spec.finalizers.
    Finalize,
    /// The server marking a deletion: written as given.
    Deletion,
    /// `pods/NAME/binding`: the handler set spec.nodeName; written as given.
    Binding,
}

impl Mode {
    pub fn of(req: &Request<'_>) -> Mode {
        match req.target.subresource.as_deref() {
            Some("status") => Mode::Status,
            Some("finalize") => Mode::Finalize,
            _ => Mode::Main,
        }
    }
}

/// How a write settles who owns which fields (metadata.managedFields).
#[derive(Clone, Copy)]
pub enum Fields<'a> {
    /// An ordinary write: its manager owns what it changed.
    Update,
    /// A server-side apply of this configuration, over an object whose
    /// managedFields are `managed` (none when the apply creates it).
    Apply {
        force: bool,
        config: &'a Value,
        managed: &'a ssa::Managed,
    },
}

/// The field manager of a request, and the ownership `fields` gives it in
/// `new`, decided once `new` is defaulted (defaults an update sets are its
/// manager's, as upstream).
pub fn record_fields(
    req: &Request<'_>,
    old: Option<&Value>,
    new: &mut Value,
    fields: Fields<'_>,
) -> ApiResult<()> {
    let manager = ssa::manager(req.query.get("fieldManager"), &req.headers);
    let target = ssa::Target {
        info: &req.target.info,
        manager: &manager,
        subresource: req.target.subresource.as_deref(),
    };
    match fields {
        Fields::Update => ssa::record_update(&target, old, new),
        Fields::Apply {
            force,
            config,
            managed,
        } => ssa::record_apply(&target, force, config, old, managed, new)?,
    }
    Ok(())
}

/// Write `new` over `old` (read at `rev`): server-owned fields carried
/// over, defaults and validation applied, the object removed instead once a
/// deletion has nothing left holding it. A write that changes nothing is
/// not written.
pub async fn write(
    req: &Request<'_>,
    old: &Value,
    mut new: Value,
    rev: i64,
    mode: Mode,
    fields: Fields<'_>,
) -> ApiResult<Value> {
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    match mode {
        Mode::Status => {
            lifecycle::prepare_update(info, true, old, &mut new);
            // Built-in status writes come from trusted controllers; a
            // custom resource's status must still fit its schema.
            let errors = custom::validate(info, &new);
            if !errors.is_empty() {
                return Err(ApiError::invalid(info.kind, info.group, &name, &errors));
            }
        }
        Mode::Finalize => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            new = old.clone();
            new["spec"]["finalizers"] = finalizers;
        }
        Mode::Main => {
            if is_service(info) {
                ipalloc::carry_cluster_ip(old, &mut new);
            }
            lifecycle::prepare_update(info, false, old, &mut new);
            admit::default_and_validate_update(info, &mut new, old)?;
            lifecycle::settle_generation(info, old, &mut new);
        }
        Mode::Deletion | Mode::Binding => {}
    }
    if matches!(mode, Mode::Main | Mode::Status) {
        record_fields(req, Some(old), &mut new, fields)?;
    }
    let is_service = is_service(info);
    let (taken, freed) = if is_service {
        req.state
            .services
            .reallocate(old, &mut new)
            .map_err(|errs| ApiError::invalid(info.kind, info.group, &name, &errs))?
    } else {
        Default::default()
    };
    let undo = |req: &Request<'_>| req.state.services.release(&taken);
    let dry_run = req.query.dry_run()?;
    let key = info.key(req.target.namespace.as_deref(), &name);

    if lifecycle::ready_to_remove(&new) {
        if dry_run {
            undo(req);
            return Ok(new);
        }
        return match req.state.store.delete(&key, Some(rev)).await {
            Ok(_) => {
                if is_service {
                    req.state.services.release(&ipalloc::held_by(old));
                    req.state.services.release(&taken);
                }
                Ok(new)
            }
            Err(e) => {
                undo(req);
                Err(ApiError::from_store(e, info, &name))
            }
        };
    }

    meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
    if &new == old || dry_run {
        undo(req);
        return Ok(new);
    }
    match req
        .state
        .store
        .update(&key, custom::to_stored(info, &new), rev)
        .await
    {
        Ok(new_rev) => {
            req.state.services.release(&freed);
            meta_mut(&mut new).insert("resourceVersion".into(), json!(new_rev.to_string()));
            Ok(new)
        }
        Err(e) => {
            undo(req);
            Err(ApiError::from_store(e, info, &name))
        }
    }
}

fn is_service(info: &crate::api::registry::ResourceInfo) -> bool {
    info.kind == "Service" && info.group.is_empty()
}
