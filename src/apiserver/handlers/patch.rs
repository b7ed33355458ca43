//! patch: JSON patch, JSON merge patch, strategic merge patch, and
//! server-side apply (`application/apply-patch+yaml`).

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::create::{create_object, with_warnings};
use super::read::{fetch_with_rev, render_one};
use super::update::{write, Fields, Mode};
use super::Request;
use crate::apiserver::admission::validation::FieldError;
use crate::apiserver::object;
use crate::apiserver::patch::{strategic_merge, PatchMeta};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::{admit, body, ssa};

const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Patch types this server applies.
#[derive(Clone, Copy)]
pub enum PatchType {
    Json,
    Merge,
    /// Built-in kinds only (their patch metadata comes from the Go types).
    Strategic,
}

impl PatchType {
    pub fn from_headers(headers: &http::HeaderMap) -> ApiResult<PatchType> {
        match body::content_type(headers).as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, {APPLY_PATCH} (got {other:?})"
            ))),
        }
    }

    /// Apply the patch document to a JSON value.
    pub fn apply(self, target: &Value, patch: &[u8]) -> ApiResult<Value> {
        match self {
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
                    ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                })?;
                let mut out = target.clone();
                json_patch::patch(&mut out, &ops).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                Ok(out)
            }
            PatchType::Merge => {
                let doc: Value = serde_json::from_slice(patch).map_err(|e| {
                    ApiError::bad_request(format!("error decoding merge patch: {e}"))
                })?;
                let mut out = target.clone();
                json_patch::merge(&mut out, &doc);
                Ok(out)
            }
            PatchType::Strategic => {
                let doc: Value = serde_json::from_slice(patch).map_err(|e| {
                    ApiError::bad_request(format!("error decoding strategic merge patch: {e}"))
                })?;
                let field = |k: &str| target.get(k).and_then(Value::as_str).unwrap_or_default();
                let Some(meta) = PatchMeta::for_kind(field("apiVersion"), field("kind")) else {
                    return Err(ApiError::unsupported_media_type(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (got \"application/strategic-merge-patch+json\")",
                    ));
                };
                strategic_merge(target, &doc, meta).map_err(ApiError::bad_request)
            }
        }
    }
}

/// How often a patch is retried when another writer got in between.
const RETRIES: usize = 5;

pub async fn patch(req: Request<'_>, body: Body) -> ApiResult<Response> {
    if body::content_type(&req.headers) == APPLY_PATCH {
        return apply(req, body).await;
    }
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    let kind = PatchType::from_headers(&req.headers)?;
    if req.query.get("force").is_some() {
        return Err(patch_options_invalid(
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let bytes = body::read(body).await?;
    let mode = req.query.field_validation()?;
    let mut attempt = 0;
    loop {
        let (old, rev) = fetch_with_rev(&req, &name).await?;
        let mut new = kind.apply(&old, &bytes)?;
        let precondition = object::meta_str(&new, "resourceVersion").map(String::from);
        if let Some(rv) = &precondition {
            if object::parse_rv(rv) != Some(rev) {
                return Err(ApiError::conflict(info, &name));
            }
        }
        body::check_type(info, &mut new)?;
        let (new, warnings) = admit::normalize(info, new, mode)?;
        if object::name(&new) != Some(name.as_str()) {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        match write(&req, &old, new, rev, Mode::of(&req), Fields::Update).await {
            // Re-applied to the newer object, a patch that pinned the old
            // resourceVersion then fails the precondition above.
            Err(e) if e.reason == "Conflict" && attempt < RETRIES => attempt += 1,
            Err(e) => return Err(e),
            Ok(written) => {
                return with_warnings(render_one(&req, StatusCode::OK, &written)?, &warnings)
            }
        }
    }
}

/// Server-side apply: the configuration merged into the object (or the
/// object created from it), with ownership settled by field manager.
async fn apply(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    let Some(manager) = req.query.get("fieldManager").map(String::from) else {
        return Err(patch_options_invalid(
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    };
    let force = req.query.flag("force");
    let mode = req.query.field_validation()?;
    let bytes = body::read(body).await?;
    let mut config = decode_apply(&bytes)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a YAML or JSON object",
        ));
    }
    body::check_type(info, &mut config)?;
    match object::name(&config) {
        Some(n) if n == name => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                other.unwrap_or("")
            )))
        }
    }
    let precondition = object::meta_str(&config, "resourceVersion").map(String::from);
    let meta = object::meta_mut(&mut config);
    meta.remove("managedFields");
    meta.remove("resourceVersion");
    let target = ssa::Target {
        info,
        manager: &manager,
        subresource: req.target.subresource.as_deref(),
    };
    let mut attempt = 0;
    loop {
        let (old, rev) = match fetch_with_rev(&req, &name).await {
            Ok(found) => found,
            Err(e) if e.code == 404 && req.target.subresource.is_none() => {
                let (new, warnings) = admit::normalize(info, config.clone(), mode)?;
                let fields = Fields::Apply {
                    force,
                    config: &config,
                    managed: &ssa::Managed::default(),
                };
                return create_object(&req, new, &warnings, fields).await;
            }
            Err(e) => return Err(e),
        };
        if precondition
            .as_deref()
            .is_some_and(|rv| object::parse_rv(rv) != Some(rev))
        {
            return Err(ApiError::conflict(info, &name));
        }
        let managed = ssa::Managed::of(Some(&old));
        let mut new = ssa::merge_apply(&target, &old, &managed, &config);
        body::check_type(info, &mut new)?;
        let (new, warnings) = admit::normalize(info, new, mode)?;
        let fields = Fields::Apply {
            force,
            config: &config,
            managed: &managed,
        };
        match write(&req, &old, new, rev, Mode::of(&req), fields).await {
            Err(e)
                if e.reason == "Conflict" && !ssa::is_apply_conflict(&e) && attempt < RETRIES =>
            {
                attempt += 1
            }
            Err(e) => return Err(e),
            Ok(written) => {
                return with_warnings(render_one(&req, StatusCode::OK, &written)?, &warnings)
            }
        }
    }
}

/// An apply configuration is YAML; JSON (what kubectl and most clients
/// send) is a subset of it that serde_json reads many times faster, so it
/// is tried first.
fn decode_apply(bytes: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    serde_yaml_ng::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Upstream validates PatchOptions before anything else: 422 naming the
/// option.
fn patch_options_invalid(field: &str, reason: &'static str, message: &str) -> ApiError {
    let error = FieldError {
        field: field.into(),
        reason,
        message: message.into(),
    };
    let mut e = ApiError::invalid("PatchOptions", "meta.k8s.io", "", &[error]);
    e.message = format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {message}");
    e
}
