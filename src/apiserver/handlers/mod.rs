//! Request handlers for resources, collections and subresources.

mod binding;
mod create;
mod delete;
mod eviction;
mod kubelet;
mod nodeproxy;
mod patch;
mod podlog;
mod podstream;
mod read;
mod scale;
mod token;
mod update;
mod watch;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::Value;

use crate::apiserver::path::ResourceTarget;
use crate::apiserver::query::Query;
use crate::apiserver::state::ApiState;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::identity::UserInfo;

pub use podstream::Connect;

/// One resource request, with everything handlers need.
pub struct Request<'a> {
    pub state: &'a ApiState,
    pub user: &'a UserInfo,
    pub target: ResourceTarget,
    pub query: Query,
    pub headers: HeaderMap,
}

/// The verb upstream would log for this request (for metrics).
pub fn verb(method: &Method, target: &ResourceTarget, query: &Query) -> &'static str {
    if is_connect(target) {
        return "CONNECT";
    }
    match *method {
        Method::GET if target.legacy_watch || query.watch() => "WATCH",
        Method::GET if target.name.is_none() => "LIST",
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE if target.name.is_none() => "DELETECOLLECTION",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Pod subresources that upgrade to a stream (any method: WebSocket
/// clients GET, SPDY clients POST).
fn is_connect(target: &ResourceTarget) -> bool {
    target.info.kind == "Pod"
        && target.info.custom.is_none()
        && target.name.is_some()
        && matches!(
            target.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        )
}

pub async fn dispatch(
    req: Request<'_>,
    method: Method,
    body: Body,
    connect: Connect,
) -> ApiResult<Response> {
    if is_connect(&req.target) {
        let sub = req.target.subresource.clone().unwrap_or_default();
        return podstream::connect(req, &sub, method, connect).await;
    }
    let sub = req.target.subresource.clone();
    let has_name = req.target.name.is_some();
    let watch = req.target.legacy_watch || req.query.watch();
    let info = &*req.target.info;
    let need = |verb: &str| -> ApiResult<()> {
        if info.supports(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match (method.clone(), sub.as_deref(), has_name) {
        (Method::GET, None, _) if watch => {
            need("watch")?;
            watch::watch(req).await
        }
        (_, _, _) if req.target.legacy_watch => Err(ApiError::method_not_allowed()),
        (Method::GET, None, false) => {
            need("list")?;
            read::list(req).await
        }
        (Method::GET, None, true) => {
            need("get")?;
            read::get(req).await
        }
        (Method::POST, None, false) => {
            need("create")?;
            create::create(req, body).await
        }
        (Method::PUT, None, true) => {
            need("update")?;
            update::put(req, body).await
        }
        (Method::PATCH, None, true) => {
            need("patch")?;
            patch::patch(req, body).await
        }
        (Method::DELETE, None, true) => {
            need("delete")?;
            delete::delete(req, body).await
        }
        (Method::DELETE, None, false) => {
            need("deletecollection")?;
            delete::delete_collection(req, body).await
        }
        (m, Some("status"), true) => match m {
            Method::GET => read::get(req).await,
            Method::PUT => update::put(req, body).await,
            Method::PATCH => patch::patch(req, body).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        (m, Some("scale"), true) => match m {
            Method::GET => scale::get(req).await,
            Method::PUT => scale::put(req, body).await,
            Method::PATCH => scale::patch(req, body).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        (Method::PUT, Some("finalize"), true) => update::put(req, body).await,
        (Method::POST, Some("binding"), true) if info.kind == "Pod" && info.custom.is_none() => {
            binding::create(req, body).await
        }
        (Method::POST, Some("eviction"), true) if info.kind == "Pod" && info.custom.is_none() => {
            eviction::create(req, body).await
        }
        (Method::GET, Some("log"), true) if info.kind == "Pod" && info.custom.is_none() => {
            podlog::get(req).await
        }
        (Method::POST, Some("token"), true)
            if info.kind == "ServiceAccount" && info.custom.is_none() =>
        {
            token::create(req, body).await
        }
        (m, Some("proxy"), true) if info.kind == "Node" && info.custom.is_none() => {
            nodeproxy::proxy(req, m, body, connect.raw_query).await
        }
        (_, Some(sub), true) => not_served(req, sub).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Subresources that need a node agent or a later controller. They answer
/// the way upstream does when the thing behind them is missing.
async fn not_served(req: Request<'_>, sub: &str) -> ApiResult<Response> {
    let info = &*req.target.info;
    let name = req.target.name.clone().unwrap_or_default();
    let obj = read::fetch(&req, &name).await?;
    if info.kind == "Pod" && sub == "proxy" {
        let node = kubelet::node_of(&obj, &name)?;
        return Err(ApiError::new(
            501,
            "NotImplemented",
            format!("pods/{sub} is not implemented by kone yet (node {node:?})"),
        ));
    }
    Err(ApiError::new(
        501,
        "NotImplemented",
        format!(
            "{}/{sub} is not implemented by this server yet",
            info.plural
        ),
    ))
}

/// A JSON response with the given code.
pub fn json(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
