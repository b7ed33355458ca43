//! Where a pod subresource served by a node goes: the pod's node, its
//! kubelet's address, the container named (with upstream's messages when
//! any of them is missing), and a mutual-TLS connection to that kubelet.

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Request;
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};

/// The node a pod is bound to; upstream's 400 when it has none.
pub fn node_of<'a>(pod: &'a Value, name: &str) -> ApiResult<&'a str> {
    match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        ))),
    }
}

/// The container `asked` for (or the only one), checked against the pod.
pub fn container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let list = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect::<Vec<_>>()
    };
    let main = list("/spec/containers");
    let all: Vec<&str> = main
        .iter()
        .copied()
        .chain(list("/spec/initContainers"))
        .chain(list("/spec/ephemeralContainers"))
        .collect();
    let chosen = match asked {
        Some(c) => c,
        None if main.len() == 1 => main[0],
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )))
        }
    };
    if !all.contains(&chosen) {
        return Err(ApiError::bad_request(format!(
            "container {chosen} is not valid for pod {name}"
        )));
    }
    Ok(chosen.to_string())
}

/// The node's InternalIP (bracketed if IPv6) and kubelet port, from its Node.
pub async fn address(req: &Request<'_>, node: &str) -> ApiResult<(String, i64)> {
    let info = crate::apiserver::stored::info("", "v1", "nodes")?;
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

/// A TLS connection to a kubelet, presenting the API server's kubelet-client
/// certificate and checking the kubelet's against the server CA.
pub async fn dial(
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    port: i64,
) -> ApiResult<TlsStream<TcpStream>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!(
            "error dialing backend: dial tcp {host}:{port}: {e}"
        ))
    };
    let name =
        rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|e| unreachable(&e))?;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        TcpStream::connect(format!("{host}:{port}")),
    )
    .await
    .map_err(|e| unreachable(&e))?
    .map_err(|e| unreachable(&e))?;
    let _ = tcp.set_nodelay(true);
    TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_chosen_with_upstreams_messages() {
        let pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}],
        }});
        assert_eq!(container(&pod, "p", Some("init")).unwrap(), "init");
        let e = container(&pod, "p", Some("x")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container x is not valid for pod p")
        );
        let e = container(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b init]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container(&one, "p", None).unwrap(), "only");
        assert!(node_of(&one, "p").is_err());
    }
}
