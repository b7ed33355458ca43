//! nodes/<name>/proxy/<path>: any request passed to the node's kubelet
//! (healthz, pods, containerLogs, …) with the API server's kubelet-client
//! identity, and its answer passed back as it came.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, Method};

use super::{kubelet, Request};
use crate::apiserver::body;
use crate::apiserver::status::{ApiError, ApiResult};

pub async fn proxy(
    req: Request<'_>,
    method: Method,
    body: Body,
    raw_query: Option<String>,
) -> ApiResult<Response> {
    let node = req.target.name.clone().unwrap_or_default();
    let (host, port) = kubelet::address(&req, &node).await?;
    let client = req
        .state
        .kubelet_client
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this server has no client for kubelets"))?;
    let mut url = format!("https://{host}:{port}/{}", req.target.rest.join("/"));
    if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(&q);
    }
    let bytes = body::read(body).await?;
    let mut out = client.request(method, &url).body(bytes);
    if let Some(ct) = req.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    let resp = out
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("error trying to reach service: {e}")))?;
    let mut answer = Response::builder().status(resp.status().as_u16());
    if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
        answer = answer.header(header::CONTENT_TYPE, ct.as_bytes());
    }
    answer
        .body(Body::from_stream(resp.bytes_stream()))
        .map(IntoResponse::into_response)
        .map_err(|e| ApiError::internal(e.to_string()))
}
