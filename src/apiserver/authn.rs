//! Authentication: client certificates and bearer tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::apiserver::listener::PeerIdentity;
use crate::apiserver::state::ApiState;
use crate::apiserver::status::ApiError;
use crate::apiserver::{object, stored};
use crate::identity::satoken::{self, BoundRef};
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

/// What a request presents: a verified client certificate's user, or a
/// bearer token.
enum Credential {
    User(UserInfo),
    Bearer(String),
}

fn credential(req: &Request) -> Result<Option<Credential>, ApiError> {
    if let Some(PeerIdentity(Some(user))) = req.extensions().get::<PeerIdentity>() {
        return Ok(Some(Credential::User(user.clone())));
    }
    let Some(auth) = req.headers().get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    auth.to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Some(Credential::Bearer(t.trim().to_string())))
        .ok_or_else(ApiError::unauthorized)
}

/// Who is calling: the verified client certificate, else a bearer token
/// (a static one, or a service account token).
async fn identify(state: &ApiState, cred: Credential) -> Result<UserInfo, ApiError> {
    let token = match cred {
        Credential::User(user) => return Ok(with_authenticated(user)),
        Credential::Bearer(t) => t,
    };
    if let Some(user) = state.tokens.get(&token) {
        return Ok(with_authenticated(user.clone()));
    }
    match service_account(state, &token).await {
        Some(user) => Ok(with_authenticated(user)),
        None => Err(ApiError::unauthorized()),
    }
}

async fn still_exists(state: &ApiState, plural: &str, ns: Option<&str>, r: &BoundRef) -> bool {
    match stored::core_object(&*state.store, plural, ns, &r.name).await {
        Ok(Some(o)) => object::uid(&o) == r.uid,
        _ => false,
    }
}

/// A service account token counts while its service account, and the
/// object it is bound to, still exist with the uids it names (upstream's
/// bound token checks).
async fn service_account(state: &ApiState, token: &str) -> Option<UserInfo> {
    let claims = state.sa_tokens.verify(token, &[satoken::ISSUER])?;
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    let bound = [
        ("serviceaccounts", Some(ns), Some(&k.serviceaccount)),
        ("pods", Some(ns), k.pod.as_ref()),
        ("secrets", Some(ns), k.secret.as_ref()),
        ("nodes", None, k.node.as_ref()),
    ];
    for (plural, ns, r) in bound {
        if let Some(r) = r {
            if !still_exists(state, plural, ns, r).await {
                return None;
            }
        }
    }
    Some(UserInfo {
        name: claims.username(),
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ],
    })
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
    let identified = match credential(&req) {
        Ok(Some(cred)) => identify(&state, cred).await.map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match identified {
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
