//! Container lifecycle hooks: postStart right after a start (a failure
//! kills the container, as upstream) and preStop before the stop signal,
//! within the grace period. Handlers: exec, httpGet and sleep.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{probes, Kubelet};
use crate::runtime::shim::client::ShimClient;

/// Runs one handler; Err carries the message upstream would record.
pub async fn run(
    k: &Kubelet,
    shim: &ShimClient,
    pod_ip: Option<&str>,
    c: &Container,
    id: &str,
    h: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let args = e.command.clone().unwrap_or_default();
        return match probes::exec(k, shim, id, args.clone(), limit).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("command {args:?} exited with {code}")),
            Err(e) => Err(e),
        };
    }
    if let Some(hg) = &h.http_get {
        let port = match &hg.port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("no port named {name:?}"))?,
        };
        let host = hg
            .host
            .clone()
            .unwrap_or_else(|| pod_ip.unwrap_or("127.0.0.1").to_string());
        let scheme = hg.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let url = format!(
            "{scheme}://{host}:{port}{}",
            hg.path.as_deref().unwrap_or("/")
        );
        let client = reqwest::Client::builder()
            .timeout(limit)
            .no_proxy()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| e.to_string())?;
        return match client.get(&url).send().await {
            Ok(r) if r.status().is_success() || r.status().is_redirection() => Ok(()),
            Ok(r) => Err(format!("HTTP hook {url} answered {}", r.status())),
            Err(e) => Err(format!("HTTP hook {url}: {e}")),
        };
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(limit)).await;
        return Ok(());
    }
    Err("the hook has no handler kone supports".into())
}
