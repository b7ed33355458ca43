//! The revisioned key-value log that holds all cluster state (kine-like).
//!
//! Every write appends a revision; the global revision is the log position.
//! The API server only sees the [`Backend`] trait so another engine (etcd)
//! can be plugged in without touching the API layer.

mod compact;
mod read;
mod schema;
mod shared;
mod sqlite;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

pub use sqlite::{SqliteBackend, SqliteOptions};

use async_trait::async_trait;
use tokio::sync::mpsc;

/// One live key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which the key was (last) created.
    pub create_revision: i64,
    /// Revision of the last write to the key: the object's resourceVersion.
    pub mod_revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as delivered to watchers, in revision order.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    /// For Put: the new value. For Delete: the key with the last value it had
    /// and `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
    /// The value before this change, if the key existed.
    pub prev: Option<KeyValue>,
}

/// A list (range) result.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// Revision the list was read at.
    pub revision: i64,
    /// True when `limit` cut the result short.
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    /// Compare-and-swap failed: the key's mod revision is not the expected one.
    #[error("revision conflict (current {current})")]
    Conflict { current: i64 },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (oldest available {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// A revision in the future was requested.
    #[error("revision {0} is newer than the current revision")]
    FutureRevision(i64),
    /// A watcher did not keep up with the writes and was ended; nothing it
    /// received was skipped, so it can watch again after the last revision
    /// it saw (or re-list if that has been compacted meanwhile).
    #[error("watcher fell too far behind (last delivered revision {last_delivered})")]
    TooSlow { last_delivered: i64 },
    #[error("storage error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Internal(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A watch stream. Events come in revision order. The channel closes when the
/// watcher fell too far behind or the store is shutting down; the last
/// message is then an `Err` saying why, so nothing is ever silently dropped.
pub type WatchReceiver = mpsc::Receiver<StoreResult<Event>>;

/// Sizes and positions, for metrics and the bench.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub current_revision: i64,
    pub compacted_revision: i64,
    pub db_size_bytes: u64,
    pub live_keys: u64,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The key's current value.
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;

    /// Keys starting with `prefix`, sorted by key, strictly after `start_after`
    /// if given, at most `limit` (0 = no limit), read at `revision` (None or 0
    /// = current). A compacted revision gives `Compacted`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> StoreResult<ListResult>;

    /// Number of live keys under `prefix`.
    async fn count(&self, prefix: &str) -> StoreResult<u64>;

    /// Create the key if absent. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<i64>;

    /// Replace the value if the key's mod revision is `expected`.
    /// Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> StoreResult<i64>;

    /// Delete the key; if `expected` is given, only at that mod revision.
    /// Returns the revision of the delete and the value the key had.
    async fn delete(&self, key: &str, expected: Option<i64>) -> StoreResult<(i64, KeyValue)>;

    /// Watch every key under `prefix` for changes strictly after `after_revision`.
    /// Events already in the log are replayed first, then live ones follow
    /// without a gap. A compacted `after_revision` gives `Compacted`.
    fn watch(&self, prefix: &str, after_revision: i64) -> StoreResult<WatchReceiver>;

    fn current_revision(&self) -> i64;

    fn stats(&self) -> StoreStats;
}
