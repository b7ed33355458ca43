//! The kubelet's HTTPS API on :10250, which only the API server may call
//! (client certificate from the cluster's client CA, in system:masters):
//! the API server proxies pods/log here, and the streaming upgrades of
//! pods/exec, attach and portforward (streams.rs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_stream::wrappers::ReceiverStream;

use super::logs::{self, LogOptions};
use super::streams;
use super::Kubelet;
use crate::apiserver::listener::{self, PeerIdentity};
use crate::runtime::shim::protocol::Status;

/// The kubelet's serving certificate and the CA its callers' certificates
/// must chain to.
pub struct KubeletTls {
    pub serving_chain_pem: String,
    pub serving_key_pem: String,
    pub client_ca_pem: String,
}

pub async fn serve(k: Arc<Kubelet>, tls: KubeletTls) -> anyhow::Result<()> {
    let config = tls_config(&tls)?;
    let addr = SocketAddr::new(k.cfg.node_ip, k.cfg.kubelet_port);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("kubelet API listening on {addr}"))?;
    tracing::info!(%addr, "kubelet API listening");
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(streams::exec).post(streams::exec),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(streams::attach).post(streams::attach),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(streams::port_forward).post(streams::port_forward),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/stats/summary", get(stats_summary))
        .with_state(k);
    listener::serve_https(tcp, config, app, std::future::pending()).await
}

fn tls_config(tls: &KubeletTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut tls.client_ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    // Mandatory client certificates: no anonymous callers at all.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| anyhow!("kubelet client verifier: {e}"))?;
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut tls.serving_chain_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut tls.serving_key_pem.as_bytes())?
        .ok_or_else(|| anyhow!("no kubelet serving key"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn text(code: StatusCode, msg: String) -> Response {
    (code, msg).into_response()
}

/// Only the API server (system:masters) reaches pods' logs and streams.
pub(super) fn authorized(peer: &PeerIdentity) -> bool {
    peer.0
        .as_ref()
        .is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"))
}

async fn container_logs(
    State(k): State<Arc<Kubelet>>,
    Extension(peer): Extension<PeerIdentity>,
    Path((ns, pod_name, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&peer) {
        return text(StatusCode::FORBIDDEN, "Forbidden".into());
    }
    let opts = match LogOptions::from_query(&q) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
    let pod = match pods.get_opt(&pod_name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod_name} not found"),
            )
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = k
        .cfg
        .log_dir
        .join(format!("{ns}_{pod_name}_{uid}"))
        .join(&container);
    let Some(path) = logs::log_file(&dir, opts.previous) else {
        let msg = if opts.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating")
        };
        return text(StatusCode::BAD_REQUEST, msg);
    };
    let alive = Arc::new(AtomicBool::new(!opts.previous));
    if opts.follow && !opts.previous {
        tokio::spawn(watch_running(
            k.clone(),
            uid,
            container.clone(),
            alive.clone(),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let flag = alive.clone();
        if let Err(e) = logs::stream(path, opts, tx, move || flag.load(Ordering::Relaxed)).await {
            tracing::debug!(error = %e, "streaming a container log");
        }
        alive.store(false, Ordering::Relaxed);
    });
    let body = Body::from_stream(futures::StreamExt::map(
        ReceiverStream::new(rx),
        Ok::<_, std::io::Error>,
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// The pods bound to this node, as a PodList (the kubelet's /pods).
async fn pods(State(k): State<Arc<Kubelet>>, Extension(peer): Extension<PeerIdentity>) -> Response {
    match node_pods(&k, &peer).await {
        Ok(items) => json_response(&serde_json::json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": items,
        })),
        Err(r) => r,
    }
}

async fn stats_summary(
    State(k): State<Arc<Kubelet>>,
    Extension(peer): Extension<PeerIdentity>,
) -> Response {
    match node_pods(&k, &peer).await {
        Ok(items) => json_response(&super::stats::summary(&k.cfg, &items)),
        Err(r) => r,
    }
}

async fn node_pods(k: &Kubelet, peer: &PeerIdentity) -> Result<Vec<Pod>, Response> {
    if !authorized(peer) {
        return Err(text(StatusCode::FORBIDDEN, "Forbidden".into()));
    }
    let api: Api<Pod> = Api::all(k.client.clone());
    let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={}", k.cfg.node_name));
    api.list(&lp)
        .await
        .map(|l| l.items)
        .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn json_response(body: &serde_json::Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Clears `alive` once the container's latest run has exited (or the
/// follower is gone).
async fn watch_running(k: Arc<Kubelet>, uid: String, name: String, alive: Arc<AtomicBool>) {
    while alive.load(Ordering::Relaxed) {
        let (rt, id, n) = (k.runtime.clone(), uid.clone(), name.clone());
        let running = tokio::task::spawn_blocking(move || {
            let shim = rt.sandbox(&id).ok()?;
            let states = shim.list().ok()?;
            let latest = states
                .iter()
                .filter(|s| s.name == n)
                .max_by_key(|s| s.attempt)?;
            Some(latest.status != Status::Exited)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
        if !running {
            alive.store(false, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
