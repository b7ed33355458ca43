//! Waiting out an unreachable API server. A node outlives its server's
//! restarts: its pods keep running, so an agent (or its kubelet at start)
//! that cannot reach the server tries again with back-off instead of
//! exiting. Only failures to reach the server are retried; an answer that
//! refuses (a bad token, a taken node name) is final.

use std::future::Future;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
// A node reports within a heartbeat period (10 s) of its server coming back.
const MAX: Duration = Duration::from_secs(10);

/// `attempt` until it succeeds or fails with something other than an
/// unreachable server; `what` names the step in the log lines.
pub async fn until_reachable<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = FIRST;
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(step = what, failures, "the server is reachable again");
                }
                return Ok(v);
            }
            Err(e) if is_unreachable(&e) => {
                failures += 1;
                tracing::warn!(
                    step = what,
                    error = %format!("{e:#}"),
                    retry_in_s = delay.as_secs(),
                    "the server is unreachable; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `e` says the server could not be reached (refused or reset
/// connection, timeout), as opposed to an answer from it.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
            return r.is_connect() || r.is_timeout();
        }
        matches!(
            cause.downcast_ref::<kube::Error>(),
            Some(kube::Error::HyperError(_) | kube::Error::Service(_))
        )
    })
}
