//! Running netlink work inside a given network namespace.
//!
//! `setns(CLONE_NEWNET)` changes only the calling thread, and a netlink socket
//! belongs to the namespace its creator was in. So each piece of work gets a
//! fresh OS thread that enters the namespace, opens its own rtnetlink socket
//! on a single-threaded runtime, and exits afterwards: tokio's worker threads
//! never leave the namespace the process started in.

use std::fs::File;
use std::future::Future;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;

/// Runs `work` on a dedicated thread inside the namespace `ns` (an nsfs file:
/// `/proc/…/ns/net` or a bind mount such as `/run/netns/X`).
pub async fn run_in<F, Fut, T>(ns: Arc<File>, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kone-netns".into())
        .spawn(move || {
            // The receiver only goes away when the caller was cancelled.
            let _ = tx.send(enter_and_run(&ns, work));
        })
        .context("spawning a network namespace thread")?;
    rx.await
        .map_err(|_| anyhow!("network namespace thread died"))?
}

fn enter_and_run<F, Fut, T>(ns: &File, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    setns(ns, CloneFlags::CLONE_NEWNET).context("entering the network namespace")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("building the netlink runtime")?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        let driver = tokio::spawn(connection);
        let result = work(handle).await;
        driver.abort();
        result
    })
}
