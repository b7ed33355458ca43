//! Tuning of the C allocator (glibc's malloc), which holds kone's heap.
//!
//! glibc gives every thread that meets contention an arena of its own, up to
//! eight per core, and keeps what is freed in each: tokio's blocking pool
//! lends many threads to short runtime and datastore calls, so a busy minute
//! leaves memory parked in arenas that an idle node never uses again. Two
//! arenas are enough for two worker threads, and freed pages go back to the
//! system now and then, much as Go's scavenger does for upstream.

use std::time::Duration;

/// How often freed heap pages are handed back.
const SCAVENGE_EVERY: Duration = Duration::from_secs(30);

/// Caps the number of arenas; call before any thread is started.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands free heap pages back to the system, so that the resident size
/// follows what is in use rather than the last peak.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases freed memory every little while, for ever.
pub async fn scavenge() {
    let mut tick = tokio::time::interval(SCAVENGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Walking the arenas takes a few milliseconds: not on a worker thread.
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    }
}
