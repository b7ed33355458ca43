//! Authentication: client certificates and bearer tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::apiserver::listener::PeerIdentity;
use crate::apiserver::state::ApiState;
use crate::apiserver::status::ApiError;
use crate::identity::UserInfo;

/// Paths anyone may read, like upstream's system:public-info-viewer.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || ["/healthz/", "/livez/", "/readyz/"]
            .iter()
            .any(|p| path.starts_with(p))
}

pub fn anonymous() -> UserInfo {
    UserInfo {
        name: "system:anonymous".into(),
        uid: String::new(),
        groups: vec!["system:unauthenticated".into()],
    }
}

/// Who is calling: the verified client certificate, else a bearer token.
fn identify(state: &ApiState, req: &Request) -> Result<Option<UserInfo>, ApiError> {
    if let Some(PeerIdentity(Some(user))) = req.extensions().get::<PeerIdentity>() {
        return Ok(Some(with_authenticated(user.clone())));
    }
    let Some(auth) = req.headers().get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = auth
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    match state.tokens.get(token) {
        Some(user) => Ok(Some(with_authenticated(user.clone()))),
        None => Err(ApiError::unauthorized()),
    }
}

fn with_authenticated(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        user.groups.push("system:authenticated".into());
    }
    user
}

pub async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    match identify(&state, &req) {
        Ok(Some(user)) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Ok(None) if is_public(req.uri().path()) => next.run(req).await,
        Ok(None) | Err(_) => {
            state.metrics.observe("", "", 401, 0.0);
            ApiError::unauthorized().into_response()
        }
    }
}
