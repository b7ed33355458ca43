//! The HTTP surface: authentication, then health, version, metrics,
//! OpenAPI, discovery and resources.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, StatusCode};

use crate::apiserver::authn;
use crate::apiserver::handlers::{self, json};
use crate::apiserver::path::{self, Target};
use crate::apiserver::query::Query;
use crate::apiserver::state::ApiState;
use crate::apiserver::status::ApiError;
use crate::apiserver::{discovery, openapi, openapi_pb};
use crate::identity::UserInfo;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3))
        .route("/openapi/v3/{*path}", get(openapi_v3_gv))
        .fallback(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authn::authenticate,
        ))
        // A bug must cost one request a 500, never the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    tracing::error!(panic = what, "request handler panicked");
    ApiError::internal(format!(
        "the server hit a bug handling this request: {what}"
    ))
    .into_response()
}

/// The Kubernetes version this server speaks.
pub const KUBE_VERSION: &str = "v1.33.5";

pub fn git_version() -> String {
    format!(
        "{KUBE_VERSION}+kone{}",
        env!("CARGO_PKG_VERSION").replace('.', "")
    )
}

async fn version() -> Response {
    let (major, minor) = ("1", "33");
    json(
        StatusCode::OK,
        &serde_json::json!({
            "major": major,
            "minor": minor,
            "gitVersion": git_version(),
            "gitCommit": option_env!("KONE_GIT_COMMIT").unwrap_or("unknown"),
            "gitTreeState": "clean",
            "buildDate": option_env!("KONE_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": format!("linux/{}", go_arch()),
        }),
    )
}

/// The architecture as Go (and so Kubernetes) names it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

async fn health(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let verbose = req.uri().query().is_some_and(|q| q.contains("verbose"));
    let path = req.uri().path().trim_start_matches('/').to_string();
    let store_ok = state.store.get("/registry/health").await.is_ok();
    let checks = [("ping", true), ("log", true), ("etcd", store_ok)];
    let ok = checks.iter().all(|(_, ok)| *ok);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = if verbose {
        let mut s = String::new();
        for (name, ok) in checks {
            s.push_str(&format!(
                "[{}]{name} {}\n",
                if ok { "+" } else { "-" },
                if ok { "ok" } else { "failed" }
            ));
        }
        s.push_str(&format!(
            "{path} check {}\n",
            if ok { "passed" } else { "failed" }
        ));
        s
    } else if ok {
        "ok".to_string()
    } else {
        format!("[-]etcd failed: reason withheld\n{path} check failed")
    };
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let body = state.metrics.render(&state.store.stats());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn openapi_v2(headers: http::HeaderMap) -> Response {
    let wants_proto = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("protobuf") && !a.contains("json"));
    let (content_type, build): (_, fn(&str) -> Option<bytes::Bytes>) = if wants_proto {
        (openapi_pb::MEDIA_TYPE, openapi::v2_protobuf)
    } else {
        ("application/json", openapi::v2_json)
    };
    match tokio::task::spawn_blocking(move || build(KUBE_VERSION)).await {
        Ok(Some(body)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        _ => ApiError::internal("the OpenAPI document could not be built").into_response(),
    }
}

async fn openapi_v3() -> Response {
    json(StatusCode::OK, &openapi::v3_root())
}

/// A group-version document, cached by clients like upstream's: a URL
/// with the current hash is immutable, one with a stale hash redirects to
/// the current one, and the hash is the ETag.
async fn openapi_v3_gv(
    axum::extract::Path(path): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: http::HeaderMap,
) -> Response {
    let Some(hash) = openapi::v3_hash(&path) else {
        return ApiError::no_route().into_response();
    };
    let query = Query::parse(query.as_deref());
    let pinned = match query.get("hash") {
        Some(h) if h != hash => {
            let to = format!("/openapi/v3/{path}?hash={hash}");
            return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
        }
        Some(_) => true,
        None => false,
    };
    let etag = format!("\"{hash}\"");
    let cache_control = if pinned {
        "public, immutable, max-age=31536000"
    } else {
        "no-cache, private"
    };
    let cache_headers = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, cache_control.to_string()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache_headers).into_response();
    }
    match tokio::task::spawn_blocking(move || openapi::v3_group_version(&path, KUBE_VERSION)).await
    {
        Ok(Some(body)) => (
            StatusCode::OK,
            cache_headers,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(None) => ApiError::no_route().into_response(),
        Err(_) => ApiError::internal("the OpenAPI document could not be built").into_response(),
    }
}

/// Everything under /api and /apis.
async fn api(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let target = match path::parse(parts.uri.path()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let user = parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(authn::anonymous);
    let (verb, resource, result) = match target {
        Target::Resource(t) => {
            let verb = handlers::verb(&parts.method, &t, &query);
            let resource = t.info.plural;
            let result = match state.inflight.admit(verb, &user) {
                Err(e) => Err(e),
                // The slot is held until the handler is done.
                // Streams need `create` whatever the method (upstream's
                // AuthorizePodWebsocketUpgradeCreatePermission).
                Ok(_slot) => match crate::apiserver::authz::authorize(
                    &user,
                    if verb == "CONNECT" { "CREATE" } else { verb },
                    &t,
                ) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let connect = handlers::Connect {
                            upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
                            raw_query: parts.uri.query().map(String::from),
                        };
                        let req = handlers::Request {
                            state: &state,
                            user: &user,
                            target: t,
                            query,
                            headers: parts.headers,
                        };
                        handlers::dispatch(req, parts.method, body, connect).await
                    }
                },
            };
            (verb, resource, result)
        }
        other => {
            drop(body);
            // Aggregated discovery (apidiscovery.k8s.io) when asked for.
            let aggregated = match other {
                Target::CoreVersions => discovery::aggregated_response(true, &parts.headers),
                Target::Groups => discovery::aggregated_response(false, &parts.headers),
                _ => None,
            };
            let doc = match other {
                Target::CoreVersions => discovery::core_versions(&state.advertise),
                Target::Groups => discovery::groups(),
                Target::Group(g) => discovery::group(&g),
                Target::GroupVersion(g, v) => discovery::resource_list(&g, &v),
                Target::Resource(_) => unreachable!("handled above"),
            };
            let response = aggregated.unwrap_or_else(|| json(StatusCode::OK, &doc));
            ("GET", "", Ok(response))
        }
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(verb, resource, code = e.code, message = %e.message, "request failed");
            }
            e.into_response()
        }
    };
    state.metrics.observe(
        verb,
        resource,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    tracing::debug!(
        verb,
        resource,
        code = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}
