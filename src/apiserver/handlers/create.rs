//! create (POST to a collection).

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::read::render_one;
use super::update::{record_fields, Fields};
use super::Request;
use crate::apiserver::admission::plugins::{self, Admitted};
use crate::apiserver::object::{self, meta_mut};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::{admit, body, custom, lifecycle};

pub async fn create(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let info = &*req.target.info;
    let bytes = body::read(body).await?;
    let (obj, warnings) = admit::decode_object(info, &req.headers, &bytes, &req.query)?;
    create_object(&req, obj, &warnings, Fields::Update).await
}

/// Create a decoded object, with the field ownership `fields` gives.
pub async fn create_object(
    req: &Request<'_>,
    mut obj: Value,
    warnings: &[String],
    fields: Fields<'_>,
) -> ApiResult<Response> {
    let info = &*req.target.info;
    if info.custom.as_ref().is_some_and(|c| c.terminating) {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        ));
    }
    let namespace = if info.namespaced() {
        let url_ns = req
            .target
            .namespace
            .clone()
            .ok_or_else(ApiError::method_not_allowed)?;
        match object::namespace(&obj) {
            Some(ns) if ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => meta_mut(&mut obj).insert("namespace".into(), json!(url_ns)),
        };
        Some(url_ns)
    } else {
        meta_mut(&mut obj).remove("namespace");
        None
    };

    let generate_name = object::meta_str(&obj, "generateName")
        .unwrap_or("")
        .to_string();
    let generated = object::name(&obj).is_none();
    if generated {
        let generate = &generate_name;
        if generate.is_empty() {
            let errors = [crate::apiserver::admission::validation::FieldError {
                field: "metadata.name".into(),
                reason: "FieldValueRequired",
                message: "Required value: name or generateName is required".into(),
            }];
            return Err(ApiError::invalid(info.kind, info.group, "", &errors));
        }
        let name = format!("{generate}{}", object::random_suffix(5));
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    let name = object::name(&obj).unwrap_or("").to_string();

    if let Some(ns) = &namespace {
        ensure_namespace_open(req, ns, &name).await?;
    }

    lifecycle::prepare_create(info, &mut obj);
    admit::default_and_validate_create(info, &mut obj)?;
    if let Some(ns) = &namespace {
        let plugins = Admitted {
            state: req.state,
            info,
            namespace: ns,
            shown_name: if generated { &generate_name } else { &name },
            dry_run: req.query.dry_run()?,
        };
        plugins::admit_create(&plugins, &mut obj, |o| {
            admit::default_and_validate_create(info, o)
        })
        .await?;
    }
    record_fields(req, None, &mut obj, fields)?;

    let held = if info.kind == "Service" && info.group.is_empty() {
        let held = req
            .state
            .services
            .allocate(&mut obj)
            .map_err(|errs| ApiError::invalid(info.kind, info.group, &name, &errs))?;
        Some(held)
    } else {
        None
    };
    let release = |req: &Request<'_>| {
        if let Some(h) = &held {
            req.state.services.release(h);
        }
    };

    if req.query.dry_run()? {
        release(req);
        return with_warnings(render_one(req, StatusCode::CREATED, &obj)?, warnings);
    }

    let key = info.key(namespace.as_deref(), &name);
    match req
        .state
        .store
        .create(&key, custom::to_stored(info, &obj))
        .await
    {
        Ok(rev) => {
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
            with_warnings(render_one(req, StatusCode::CREATED, &obj)?, warnings)
        }
        Err(e) => {
            release(req);
            Err(ApiError::from_store(e, info, &name))
        }
    }
}

/// Objects go only into namespaces that exist and are not being deleted.
async fn ensure_namespace_open(req: &Request<'_>, ns: &str, name: &str) -> ApiResult<()> {
    let namespaces = crate::apiserver::stored::info("", "v1", "namespaces")?;
    let kv = req.state.store.get(&namespaces.key(None, ns)).await?;
    let Some(kv) = kv else {
        return Err(ApiError::not_found(&namespaces, ns));
    };
    let obj = object::from_stored(&kv.value, kv.mod_revision)
        .map_err(|e| ApiError::internal(format!("decoding namespace {ns}: {e}")))?;
    if object::is_deleting(&obj) {
        let mut e = ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            crate::apiserver::status::qualified(&req.target.info),
            name
        ));
        e.details = Some(json!({
            "name": ns,
            "kind": "namespaces",
            "causes": [{ "reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace" }],
        }));
        return Err(e);
    }
    Ok(())
}

/// Attach `Warning` headers, which kubectl prints.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> ApiResult<Response> {
    for v in admit::warning_headers(warnings) {
        resp.headers_mut().append(http::header::WARNING, v);
    }
    Ok(resp)
}
