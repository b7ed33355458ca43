//! pods/log: proxied to the kubelet of the pod's node, streamed back as
//! kube-apiserver does (text/plain, chunked while following).

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{read, Request};
use crate::api::registry;
use crate::apiserver::object;
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
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match req.query.get("container") {
        Some(c) => c.to_string(),
        None if pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() == 1) =>
        {
            containers[0].to_string()
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if !containers.contains(&container.as_str()) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let client = req
        .state
        .kubelet_client
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this server has no client for kubelets"))?;
    let (host, port) = kubelet_address(&req, node).await?;
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

/// The node a pod is bound to; upstream's 400 when it has none.
pub fn node_of<'a>(pod: &'a Value, name: &str) -> ApiResult<&'a str> {
    match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        ))),
    }
}

/// The node's InternalIP and kubelet port, from its Node object.
async fn kubelet_address(req: &Request<'_>, node: &str) -> ApiResult<(String, i64)> {
    let info = registry::lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not registered"))?;
    let key = info.key(None, node);
    let kv = req
        .state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(&info, node))?;
    let obj = object::from_stored(&kv.value, kv.mod_revision)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let addr = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .ok_or_else(|| ApiError::unavailable(format!("node {node:?} has no InternalIP")))?;
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .unwrap_or(10250);
    let host = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    };
    Ok((host, port))
}
