//! Positions of the log that every thread can read without touching SQLite.

use std::sync::atomic::{AtomicI64, Ordering};

use super::watch::Broadcaster;

/// Written only by the writer thread, after the matching transaction
/// committed (except `compacted`, raised *before* rows go; see compact.rs).
pub(super) struct Shared {
    current: AtomicI64,
    compacted: AtomicI64,
    live_keys: AtomicI64,
    pub(super) watchers: Broadcaster,
}

impl Shared {
    pub(super) fn new(current: i64, compacted: i64, live_keys: i64) -> Self {
        Shared {
            current: AtomicI64::new(current),
            compacted: AtomicI64::new(compacted),
            live_keys: AtomicI64::new(live_keys),
            watchers: Broadcaster::new(current),
        }
    }

    pub(super) fn current(&self) -> i64 {
        self.current.load(Ordering::Acquire)
    }

    pub(super) fn set_current(&self, rev: i64) {
        self.current.store(rev, Ordering::Release);
    }

    pub(super) fn compacted(&self) -> i64 {
        self.compacted.load(Ordering::Acquire)
    }

    pub(super) fn set_compacted(&self, rev: i64) {
        self.compacted.store(rev, Ordering::Release);
    }

    pub(super) fn live_keys(&self) -> i64 {
        self.live_keys.load(Ordering::Relaxed)
    }

    pub(super) fn add_live_keys(&self, delta: i64) {
        self.live_keys.fetch_add(delta, Ordering::Relaxed);
    }
}
