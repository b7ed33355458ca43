//! The server's side of joining: `/cacerts` for anyone, and node
//! identities for callers that know the join secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::{free_pod_cidr, JoinRequest, NodeIdentity, CACERTS_PATH, NODE_IDENTITY_PATH};
use crate::api::registry;
use crate::apiserver::object;
use crate::datastore::Backend;
use crate::identity::{parse_token_parts, Identity};

pub struct JoinState {
    ident: Identity,
    secret_sha256: [u8; 32],
    store: Arc<dyn Backend>,
    cluster_cidr: Ipv4Net,
    /// podCIDRs handed out by this process, by node name: two nodes joining
    /// before either registered must not get the same one.
    handed_out: Mutex<HashMap<String, Ipv4Net>>,
}

impl JoinState {
    /// `token` is the server's full token; `reserved` the podCIDR of the
    /// server's own node, if it runs one.
    pub fn new(
        ident: Identity,
        token: &str,
        store: Arc<dyn Backend>,
        cluster_cidr: Ipv4Net,
        reserved: Option<Ipv4Net>,
    ) -> JoinState {
        let secret = parse_token_parts(token).secret;
        let handed_out = reserved
            .map(|c| HashMap::from([(String::new(), c)]))
            .unwrap_or_default();
        JoinState {
            ident,
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            store,
            cluster_cidr,
            handed_out: Mutex::new(handed_out),
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

    /// The node's podCIDR: the one its Node already has, else one handed
    /// out earlier, else the first free /24.
    async fn pod_cidr(&self, node: &str) -> anyhow::Result<Ipv4Net> {
        let info = registry::lookup("", "v1", "nodes")
            .ok_or_else(|| anyhow::anyhow!("nodes are not registered"))?;
        let list = self
            .store
            .list(&info.list_prefix(None), None, 0, None)
            .await?;
        let mut taken = Vec::new();
        for kv in list.items {
            let n = object::from_stored(&kv.value, kv.mod_revision)?;
            let Some(cidr) = n
                .pointer("/spec/podCIDR")
                .and_then(|c| c.as_str())
                .and_then(|c| c.parse::<Ipv4Net>().ok())
            else {
                continue;
            };
            if object::name(&n) == Some(node) {
                return Ok(cidr);
            }
            taken.push(cidr);
        }
        let mut handed = self
            .handed_out
            .lock()
            .map_err(|_| anyhow::anyhow!("podCIDR table poisoned"))?;
        if let Some(c) = handed.get(node) {
            return Ok(*c);
        }
        taken.extend(handed.values().copied());
        let cidr = free_pod_cidr(self.cluster_cidr, &taken).ok_or_else(|| {
            anyhow::anyhow!("no free /24 left in the cluster CIDR {}", self.cluster_cidr)
        })?;
        handed.insert(node.to_string(), cidr);
        Ok(cidr)
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
            pod_cidr: self.pod_cidr(&req.node_name).await?.to_string(),
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
    match s.identity(&req).await {
        Ok(id) => {
            tracing::info!(node = %req.node_name, ip = %req.node_ip, pod_cidr = %id.pod_cidr, "node joined");
            Json(id).into_response()
        }
        Err(e) => {
            tracing::warn!(node = %req.node_name, error = %format!("{e:#}"), "node identity");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
        }
    }
}
