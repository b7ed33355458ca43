//! rustls configuration for the API server.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::store::Identity;

/// Serve with the apiserver certificate and accept, but do not require,
/// client certificates from the client CA.
///
/// Client certs are optional because anonymous requests (/healthz,
/// /version, /cacerts for joining agents) and bearer-token clients must get
/// through the handshake; authentication decides later. A certificate that
/// is presented must still verify, or the handshake fails.
pub fn server_tls_config(identity: &Identity) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    // An explicit provider, so nothing depends on which crypto provider some
    // other dependency may have installed as the process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    let mut rd = identity.client_ca_pem.as_bytes();
    for cert in rustls_pemfile::certs(&mut rd) {
        roots
            .add(cert.context("parsing client CA")?)
            .context("adding client CA to the trust store")?;
    }
    if roots.is_empty() {
        roots
            .add(CertificateDer::from(identity.client_ca_der.clone()))
            .context("adding client CA to the trust store")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow!("building client certificate verifier: {e}"))?;

    let mut rd = identity.serving_chain_pem.as_bytes();
    let chain = rustls_pemfile::certs(&mut rd)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing serving certificate chain")?;
    let mut rd = identity.serving_key_pem.as_bytes();
    let key = rustls_pemfile::private_key(&mut rd)
        .context("parsing serving key")?
        .context("no private key in serving key PEM")?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("selecting TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading serving certificate")?;
    // kubectl and client-go speak HTTP/2 when offered; exec/attach upgrades
    // and older clients need HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls needs a process-wide crypto provider for clients built without an
/// explicit one (reqwest, oci-client); kone uses ring everywhere.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means one is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
