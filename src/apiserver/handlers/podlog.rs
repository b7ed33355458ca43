//! pods/log: proxied to the kubelet of the pod's node, streamed back as
//! kube-apiserver does (text/plain, chunked while following).

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{kubelet, read, Request};
use crate::apiserver::status::{ApiError, ApiResult};

/// The query parameters the kubelet understands, passed through as given.
const FORWARDED: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

pub async fn get(req: Request<'_>) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let ns = req.target.namespace.clone().unwrap_or_default();
    let pod = read::fetch(&req, &name).await?;
    let node = kubelet::node_of(&pod, &name)?;
    let container = kubelet::container(&pod, &name, req.query.get("container"))?;
    let client = req
        .state
        .kubelet_client
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this server has no client for kubelets"))?;
    let (host, port) = kubelet::address(&req, node).await?;
    let mut url = reqwest::Url::parse(&format!("https://{host}:{port}/"))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    url.set_path(&format!("/containerLogs/{ns}/{name}/{container}"));
    for k in FORWARDED {
        if let Some(v) = req.query.get(k) {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    let resp = client.get(url).send().await.map_err(|e| {
        ApiError::internal(format!(
            "Get \"https://{host}:{port}/containerLogs/{ns}/{name}/{container}\": {e}"
        ))
    })?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let reason = match status.as_u16() {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            _ => "InternalError",
        };
        return Err(ApiError::new(
            status.as_u16(),
            reason,
            text.trim().to_string(),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(resp.bytes_stream()),
    )
        .into_response())
}
