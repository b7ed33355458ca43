//! What a failed reconcile does. The loops fail only on API calls (and on
//! objects that do not decode), and the next try usually succeeds, so each
//! tries again shortly; its work queue keeps one pending try per object.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// The error policy of every loop: log, then try again in 2 s.
pub fn soon<K: Resource<DynamicType = ()>, C>(obj: Arc<K>, error: &Error, _ctx: Arc<C>) -> Action {
    tracing::debug!(kind = %K::kind(&()), namespace = ?obj.namespace(), name = %obj.name_any(), %error, "sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}
