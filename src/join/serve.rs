//! The server's side of joining: `/cacerts` for anyone, and node
//! identities for callers that know the join secret.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::{password, JoinRequest, NodeIdentity, CACERTS_PATH, NODE_IDENTITY_PATH};
use crate::identity::{parse_token_parts, Identity};

pub struct JoinState {
    ident: Identity,
    /// Reads and writes node-password Secrets.
    client: kube::Client,
    secret_sha256: [u8; 32],
    cluster_cidr: Ipv4Net,
}

impl JoinState {
    /// `token` is the server's full token.
    pub fn new(
        ident: Identity,
        client: kube::Client,
        token: &str,
        cluster_cidr: Ipv4Net,
    ) -> JoinState {
        let secret = parse_token_parts(token).secret;
        JoinState {
            ident,
            client,
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            cluster_cidr,
        }
    }

    /// Basic auth `node:<secret>` (or `server:<secret>`, as k3s accepts).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(creds) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        match creds.split_once(':') {
            Some(("node" | "server", secret)) => {
                // Digests compared, so the time taken says nothing about the secret.
                let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                got == self.secret_sha256
            }
            _ => false,
        }
    }

    async fn identity(&self, req: &JoinRequest) -> anyhow::Result<NodeIdentity> {
        let (client_cert, client_key) = self.ident.issue_node_client_cert(&req.node_name)?;
        let (serving_cert, serving_key) = self
            .ident
            .issue_kubelet_serving_cert(&req.node_name, req.node_ip)?;
        Ok(NodeIdentity {
            client_cert,
            client_key,
            serving_cert,
            serving_key,
            client_ca: self.ident.client_ca_pem.clone(),
            cluster_cidr: self.cluster_cidr.to_string(),
        })
    }
}

pub fn routes(state: Arc<JoinState>) -> Router {
    Router::new()
        .route(CACERTS_PATH, get(cacerts))
        .route(NODE_IDENTITY_PATH, post(node_identity))
        .with_state(state)
}

/// The CA bundle byte for byte: the agent hashes exactly these bytes.
async fn cacerts(State(s): State<Arc<JoinState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        s.ident.server_ca_pem.clone(),
    )
        .into_response()
}

async fn node_identity(
    State(s): State<Arc<JoinState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !s.admits(&headers) {
        return (StatusCode::UNAUTHORIZED, "the join token is not valid\n").into_response();
    }
    let req: JoinRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad join request: {e}\n")).into_response()
        }
    };
    let problems = crate::api::labels::is_dns1123_subdomain(&req.node_name);
    if !problems.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            format!("node name {:?}: {}\n", req.node_name, problems.join("; ")),
        )
            .into_response();
    }
    if req.node_password.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "the join request carries no node password\n",
        )
            .into_response();
    }
    match password::admit(&s.client, &req.node_name, &req.node_password).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(node = %req.node_name, ip = %req.node_ip, "refused a join: the node password differs");
            return (
                StatusCode::FORBIDDEN,
                format!("{}\n", password::name_taken(&req.node_name)),
            )
                .into_response();
        }
        Err(e) => {
            tracing::warn!(node = %req.node_name, error = %format!("{e:#}"), "checking the node password");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response();
        }
    }
    match s.identity(&req).await {
        Ok(id) => {
            tracing::info!(node = %req.node_name, ip = %req.node_ip, "node joined");
            Json(id).into_response()
        }
        Err(e) => {
            tracing::warn!(node = %req.node_name, error = %format!("{e:#}"), "node identity");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
        }
    }
}
