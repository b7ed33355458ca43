//! The HTTPS listener: TLS, HTTP/1.1 + HTTP/2, and the client-cert identity.
//!
//! Authentication itself happens in the router; this layer only records who
//! the verified client certificate names, because only the TLS session
//! knows it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::{user_from_cert_der, UserInfo};

/// The user named by the client certificate of the connection a request
/// came on (already verified against the client CA by rustls), or None when
/// the client sent no certificate. Present in every request's extensions.
#[derive(Clone, Debug, Default)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// A client that opens a socket and stalls must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// kubectl and client libraries multiplex many watches over one HTTP/2
/// connection; hyper's default of 200 streams is too few for informers.
const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// Serve `app` over TLS on `listener` until `shutdown` completes.
///
/// When shutdown fires, accepting stops and open connections are asked to
/// finish gracefully; this function returns without waiting for them
/// (long-running watches would otherwise hold the process forever).
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let builder = Arc::new(http_builder());
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept;
                    // back off briefly instead of spinning or dying.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, acceptor, builder, app, stop_rx).await;
        });
    }
    stop_tx.send_replace(());
    Ok(())
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer lets hyper enforce its header-read timeout against
    // slow-loris clients and run HTTP/2 keep-alive if enabled.
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: axum::Router,
    mut stop_rx: watch::Receiver<()>,
) {
    // Watch events and small API responses must not wait for Nagle.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set TCP_NODELAY failed");
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| user_from_cert_der(leaf));
    let identity = PeerIdentity(user);

    let service = app.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(identity.clone());
        req
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop_rx.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{default_sans, ensure_identity, Identity};
    use axum::routing::get;
    use axum::Extension;
    use http_body_util::{BodyExt, Empty};

    async fn whoami(Extension(peer): Extension<PeerIdentity>) -> String {
        peer.0.map(|u| u.name).unwrap_or_else(|| "<none>".into())
    }

    async fn start(id: &Identity) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let tls = crate::identity::server_tls_config(id).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/whoami", get(whoami));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_https(listener, tls, app, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn identity(dir: &std::path::Path) -> Identity {
        let sans = default_sans(&[], None, "10.43.0.1".parse().unwrap());
        ensure_identity(dir, &sans).unwrap()
    }

    fn client(id: &Identity, cert: Option<(&str, &str)>) -> reqwest::Client {
        crate::identity::install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(id.server_ca_pem.as_bytes()).unwrap()]);
        if let Some((cert, key)) = cert {
            let pem = format!("{cert}{key}");
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    #[tokio::test]
    async fn client_cert_becomes_peer_identity() {
        let dir = tempfile::tempdir().unwrap();
        let id = identity(dir.path());
        let (addr, _stop) = start(&id).await;
        let url = format!("https://localhost:{}/whoami", addr.port());

        let anon = client(&id, None).get(&url).send().await.unwrap();
        assert_eq!(anon.text().await.unwrap(), "<none>");

        let admin = client(&id, Some((&id.admin_cert_pem, &id.admin_key_pem)));
        let resp = admin.get(&url).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "system:admin");

        // A certificate from some other CA is refused outright, not treated
        // as anonymous.
        let other_dir = tempfile::tempdir().unwrap();
        let other = identity(other_dir.path());
        let stranger = client(&id, Some((&other.admin_cert_pem, &other.admin_key_pem)));
        assert!(stranger.get(&url).send().await.is_err());
    }

    #[tokio::test]
    async fn speaks_http2_with_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let id = identity(dir.path());
        let (addr, stop) = start(&id).await;

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                id.server_ca_der.clone(),
            ))
            .unwrap();
        let mut rd = id.admin_cert_pem.as_bytes();
        let chain = rustls_pemfile::certs(&mut rd)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let mut rd = id.admin_key_pem.as_bytes();
        let key = rustls_pemfile::private_key(&mut rd).unwrap().unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec()];

        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("kubernetes.default.svc").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        // Several concurrent streams on the one connection.
        let mut reqs = Vec::new();
        for _ in 0..5 {
            let req = http::Request::get(format!("https://{addr}/whoami"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            reqs.push(send.send_request(req));
        }
        for r in reqs {
            let resp = r.await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"system:admin");
        }

        // After shutdown no new connections are accepted.
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = tokio::time::timeout(Duration::from_secs(2), async {
            match TcpStream::connect(addr).await {
                Err(_) => true,
                // A connect may still succeed in the kernel backlog race;
                // then the server must not answer the handshake.
                Ok(mut s) => {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 1];
                    matches!(s.read(&mut buf).await, Ok(0) | Err(_))
                }
            }
        })
        .await
        .unwrap_or(false);
        assert!(refused);
    }
}
