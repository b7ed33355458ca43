//! pods/exec, pods/attach and pods/portforward: after the checks a user can
//! fail here (pod, node, container), the client's upgrade request goes to
//! the pod's kubelet, and once the kubelet switched protocols the bytes are
//! copied both ways untouched, as kube-apiserver's upgrade-aware proxy
//! does. The kubelet speaks WebSocket and SPDY itself, so a kubelet on
//! another machine is reached the same way.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::{kubelet, read, Request};
use crate::apiserver::status::{ApiError, ApiResult};

/// What of the client's request the upgrade needs beyond `Request`.
#[derive(Default)]
pub struct Connect {
    pub upgrade: Option<OnUpgrade>,
    pub raw_query: Option<String>,
}

/// Request headers the kubelet needs to answer the handshake itself.
const FORWARDED: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// A refusal from the kubelet is passed on up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn connect(
    req: Request<'_>,
    sub: &str,
    method: Method,
    conn: Connect,
) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let ns = req.target.namespace.clone().unwrap_or_default();
    let pod = read::fetch(&req, &name).await?;
    let node = kubelet::node_of(&pod, &name)?;
    let path = if sub == "portforward" {
        format!("/portForward/{ns}/{name}")
    } else {
        let container = kubelet::container(&pod, &name, req.query.get("container"))?;
        format!("/{sub}/{ns}/{name}/{container}")
    };
    let upgrading = req.headers.contains_key(UPGRADE)
        && req.headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade"))
        });
    let client_side = conn
        .upgrade
        .filter(|_| upgrading)
        .ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let tls = req
        .state
        .kubelet_tls
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this server has no client for kubelets"))?;
    let (host, port) = kubelet::address(&req, node).await?;
    let stream = kubelet::dial(tls, &host, port).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet stream connection");
        }
    });
    let uri = match &conn.raw_query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut upstream = http::Request::builder()
        .method(method)
        .uri(&uri)
        .header(HOST, format!("{host}:{port}"));
    for h in FORWARDED {
        for v in req.headers.get_all(*h) {
            upstream = upstream.header(*h, v);
        }
    }
    let upstream = upstream
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(upstream)
        .await
        .map_err(|e| ApiError::internal(format!("error sending request to the kubelet: {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The kubelet's own answer (a Status for what it refused).
        let status = resp.status();
        let ctype = resp.headers().get(CONTENT_TYPE).cloned();
        let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut out = Response::builder().status(status);
        if let Some(c) = ctype {
            out = out.header(CONTENT_TYPE, c);
        }
        return out
            .body(Body::from(body))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let headers = resp.headers().clone();
    let kubelet_side = hyper::upgrade::on(resp);
    tracing::debug!(%ns, pod = %name, sub, node, "proxying a stream to the kubelet");
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::join!(client_side, kubelet_side) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => {
                return tracing::debug!(
                    client = c.is_ok(),
                    kubelet = k.is_ok(),
                    "stream upgrade failed"
                )
            }
        };
        let (mut c, mut k) = (TokioIo::new(client), TokioIo::new(kubelet));
        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut k).await {
            tracing::debug!(error = %e, "stream proxy ended");
        }
    });
    let mut out = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in &headers {
        out = out.header(k, v);
    }
    out.body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}
