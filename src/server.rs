//! `kone server`: wires the datastore, identity, API server and controllers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::api::registry;
use crate::apiserver::inflight::Inflight;
use crate::apiserver::ipalloc::ServiceAllocator;
use crate::apiserver::metrics::Metrics;
use crate::apiserver::state::ApiState;
use crate::apiserver::{listener, object, router};
use crate::config::ServerArgs;
use crate::datastore::{Backend, SqliteBackend, SqliteOptions};
use crate::{bootstrap, client, controllers, identity, netinfo};

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let server_dir = args.data_dir.join("server");
    let node_ports = args.node_port_range()?;
    let kubeconfig_mode = args.kubeconfig_mode()?;
    // Read at start so a bad registries.yaml stops the server, as in k3s;
    // the node agent will pull images with it (runtime::images::Puller).
    let registries = args.registry.load()?;
    let (mirrored, configured) = registries.summary();
    tracing::info!(mirrored, configured, "registry configuration");
    let token_users = match &args.token_auth_file {
        Some(p) => identity::load_token_auth_file(p)?,
        None => Default::default(),
    };

    let store = SqliteBackend::open_with(&server_dir.join("db").join("state.db"), store_options())
        .with_context(|| format!("opening the datastore under {}", server_dir.display()))?;
    let store: Arc<dyn Backend> = store;

    let services = ServiceAllocator::new(args.service_cidr, node_ports);
    let service_ip = IpAddr::V4(services.first_ip());
    let advertise = args.advertise_address.unwrap_or_else(|| {
        if args.bind_address.is_unspecified() {
            netinfo::primary_ip()
        } else {
            args.bind_address
        }
    });
    let sans = identity::default_sans(&args.tls_san, Some(advertise), service_ip);
    let ident = identity::ensure_identity(&server_dir.join("tls"), &sans)?;
    let token =
        identity::ensure_server_token(&server_dir, args.token.as_deref(), &ident.ca_sha256_hex())?;

    reserve_service_addresses(&*store, &services).await?;
    // Custom kinds are served from the first request on, restart or not.
    let crds = crate::apiserver::custom::sync::load(&*store)
        .await
        .context("loading CustomResourceDefinitions")?;
    tokio::spawn(crate::apiserver::custom::sync::run(store.clone(), crds));
    let kubelet_client = kubelet_clients(&ident)?;
    let state = Arc::new(ApiState {
        store: store.clone(),
        tokens: token_users,
        services,
        metrics: Metrics::default(),
        advertise: SocketAddr::new(advertise, args.https_listen_port).to_string(),
        bookmark_interval: env_duration("KONE_WATCH_BOOKMARK_SECS", Duration::from_secs(60)),
        // kube-apiserver's defaults.
        inflight: Inflight::new(400, 200),
        kubelet_client: Some(kubelet_client.0),
        kubelet_tls: Some(kubelet_client.1),
        sa_tokens: identity::TokenIssuer::load_or_create(&server_dir.join("tls"))?,
    });
    let api = router::router(state);
    let joining = crate::join::serve::JoinState::new(
        ident.clone(),
        client::in_process(api.clone(), client::controller_user("kone-join")),
        &token,
        args.cluster_cidr,
    );
    let app = api.merge(crate::join::serve::routes(Arc::new(joining)));

    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let tls = identity::server_tls_config(&ident)?;
    let serve = tokio::spawn(listener::serve_https(
        tcp,
        tls,
        app.clone(),
        shutdown_signal(),
    ));

    let admin = client::in_process(app.clone(), client::controller_user("kube-apiserver"));
    bootstrap::ensure(&admin, service_ip, advertise, args.https_listen_port).await?;

    let local = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match args.bind_address {
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    identity::write_kubeconfig(
        &args.write_kubeconfig,
        kubeconfig_mode,
        &format!("https://{local}:{}", args.https_listen_port),
        &ident,
    )?;

    let controllers = client::in_process(
        app.clone(),
        client::controller_user("kube-controller-manager"),
    );
    controllers::start(
        controllers,
        controllers::Settings {
            ca_pem: ident.server_ca_pem.clone(),
            cluster_cidr: args.cluster_cidr,
            identity: args.node.name(),
            storage_dir: args.data_dir.join("storage"),
        },
    );

    if !args.disable_agent {
        let node_client = client::in_process(app.clone(), node_user(&args.node.name()));
        let cfg = kubelet_config(&args, advertise)?;
        let tls = kubelet_tls(&ident, &cfg)?;
        let password = crate::agent::password::ensure(&args.data_dir.join("agent"))?;
        let joining = client::in_process(app.clone(), client::controller_user("kone-join"));
        tokio::spawn(async move {
            // As if it had joined: the node name is bound to this machine,
            // so an agent elsewhere cannot take it.
            let node = async {
                crate::join::password::claim(&joining, &cfg.node_name, &password).await?;
                crate::kubelet::run(cfg, node_client, registries, tls).await
            };
            if let Err(e) = node.await {
                tracing::error!(error = %format!("{e:#}"), "the node agent stopped");
            }
        });
    }
    tracing::info!(
        listen = %addr,
        kubeconfig = %args.write_kubeconfig.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "kone server is ready"
    );
    serve.await.context("API server task")??;
    tracing::info!("kone server stopped");
    Ok(())
}

/// How the API server calls kubelets: its own client certificate (in
/// system:masters, like kube-apiserver-kubelet-client) and the server CA
/// that signs kubelet serving certificates. reqwest for plain requests
/// (logs); a rustls config speaking HTTP/1.1 for the upgraded streams.
fn kubelet_clients(
    ident: &identity::Identity,
) -> anyhow::Result<(reqwest::Client, Arc<rustls::ClientConfig>)> {
    let (cert, key) =
        ident.issue_client_cert("kube-apiserver-kubelet-client", Some("system:masters"))?;
    let id = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes())?;
    let ca = reqwest::Certificate::from_pem(ident.server_ca_pem.as_bytes())?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .identity(id)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ident.server_ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let chain = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut key.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no kubelet client key"))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((client, Arc::new(tls)))
}

/// The server's own kubelet serves with a certificate from the server CA.
fn kubelet_tls(
    ident: &identity::Identity,
    cfg: &crate::kubelet::KubeletConfig,
) -> anyhow::Result<crate::kubelet::server::KubeletTls> {
    let (chain, key) = ident.issue_kubelet_serving_cert(&cfg.node_name, cfg.node_ip)?;
    Ok(crate::kubelet::server::KubeletTls {
        serving_chain_pem: chain,
        serving_key_pem: key,
        client_ca_pem: ident.client_ca_pem.clone(),
    })
}

/// The node's identity, as a kubelet's client certificate would carry it.
fn node_user(node: &str) -> identity::UserInfo {
    identity::UserInfo {
        name: format!("system:node:{node}"),
        uid: String::new(),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    }
}

/// The server's own node; its podCIDR comes from the node IPAM controller.
fn kubelet_config(
    args: &ServerArgs,
    advertise: IpAddr,
) -> anyhow::Result<crate::kubelet::KubeletConfig> {
    crate::kubelet::KubeletConfig::new(
        &args.node,
        &args.data_dir,
        args.node.node_ip.unwrap_or(advertise),
        args.cluster_cidr,
        true,
    )
}

/// Service addresses are held by the stored Services; take them back.
async fn reserve_service_addresses(
    store: &dyn Backend,
    services: &ServiceAllocator,
) -> anyhow::Result<()> {
    let info = registry::lookup("", "v1", "services").context("services are not registered")?;
    let list = store.list(&info.list_prefix(None), None, 0, None).await?;
    for kv in list.items {
        let svc = object::from_stored(&kv.value, kv.mod_revision)
            .with_context(|| format!("decoding stored {}", kv.key))?;
        services.reserve_existing(&svc);
    }
    Ok(())
}

/// The compaction window; the KONE_COMPACT_* variables exist for tests and
/// benchmarks that need compaction to happen sooner.
fn store_options() -> SqliteOptions {
    let d = SqliteOptions::default();
    SqliteOptions {
        compact_interval: env_duration("KONE_COMPACT_INTERVAL_SECS", d.compact_interval),
        keep_revisions: std::env::var("KONE_COMPACT_KEEP_REVISIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d.keep_revisions),
        keep_duration: env_duration("KONE_COMPACT_KEEP_SECS", d.keep_duration),
        ..d
    }
}

fn env_duration(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
