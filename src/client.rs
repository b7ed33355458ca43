//! The in-process Kubernetes client: kube-rs over the API router itself.
//!
//! Controllers in the server process talk to the API exactly like remote
//! clients (same authentication, admission and validation path), without
//! TCP or TLS.

use axum::Router;
use tower::ServiceBuilder;

use crate::apiserver::listener::PeerIdentity;
use crate::identity::UserInfo;

/// A kube client acting as `user` against `router`.
pub fn in_process(router: Router, user: UserInfo) -> kube::Client {
    let service = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<kube::client::Body>| {
            req.extensions_mut()
                .insert(PeerIdentity(Some(user.clone())));
            req
        })
        .service(router);
    kube::Client::new(service, "default")
}

/// The identity controllers run as, like kube-controller-manager's.
pub fn controller_user(name: &str) -> UserInfo {
    UserInfo {
        name: format!("system:{name}"),
        uid: String::new(),
        groups: vec!["system:masters".into()],
    }
}
