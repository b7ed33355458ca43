//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::inflight::Inflight;
use crate::apiserver::ipalloc::ServiceAllocator;
use crate::apiserver::metrics::Metrics;
use crate::datastore::Backend;
use crate::identity::UserInfo;

pub struct ApiState {
    pub store: Arc<dyn Backend>,
    /// Bearer tokens from --token-auth-file.
    pub tokens: HashMap<String, UserInfo>,
    pub services: ServiceAllocator,
    pub metrics: Metrics,
    /// host:port clients reach this server at (discovery's serverAddress).
    pub advertise: String,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_interval: Duration,
    pub inflight: Inflight,
    /// Client for kubelets' APIs (pods/log), with the API server's
    /// kubelet-client certificate.
    pub kubelet_client: Option<reqwest::Client>,
    /// The same identity for the streams proxied to kubelets (HTTP/1.1
    /// upgrades, which reqwest cannot hand over).
    pub kubelet_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Signs TokenRequests and verifies service account tokens.
    pub sa_tokens: crate::identity::TokenIssuer,
}
