//! The embedded engine: a SQLite file holding the revisioned log.
//!
//! Wiring only; the parts live next door: schema.rs (layout), writer.rs
//! (the one writer thread, group commit), read.rs (read pool, queries),
//! watch.rs (fan-out), compact.rs (history window).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::compact::Window;
use super::read::{self, ReadPool};
use super::schema;
use super::shared::Shared;
use super::watch;
use super::writer::{CompactRequest, Op, Request, WriteRequest, Writer, Written};
use super::{Backend, KeyValue, ListResult, StoreError, StoreResult, StoreStats, WatchReceiver};

/// Tunables; `Default` is what a server uses.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How often background compaction runs. Zero disables it
    /// (`compact_now` still works).
    pub compact_interval: Duration,
    /// Compaction keeps at least this many recent revisions...
    pub keep_revisions: i64,
    /// ...and at least everything written this recently.
    pub keep_duration: Duration,
    /// Events a watcher may have queued before it is ended as too slow.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            compact_interval: Duration::from_secs(30),
            keep_revisions: 1_000,
            keep_duration: Duration::from_secs(300),
            watch_buffer: 10_000,
        }
    }
}

pub struct SqliteBackend {
    path: PathBuf,
    shared: Arc<Shared>,
    reads: Arc<ReadPool>,
    /// `None` only while dropping: closing it stops the writer thread.
    writer: Option<mpsc::UnboundedSender<Request>>,
    writer_thread: Option<JoinHandle<()>>,
    window: Mutex<Window>,
    watch_buffer: usize,
    rt: tokio::runtime::Handle,
}

impl SqliteBackend {
    /// Open (or create) the store at `path` with default options.
    /// Must be called inside a tokio runtime.
    pub fn open(path: &Path) -> StoreResult<Arc<SqliteBackend>> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Open (or create) the store at `path`, start its writer thread and,
    /// unless `compact_interval` is zero, its compaction task.
    pub fn open_with(path: &Path, opts: SqliteOptions) -> StoreResult<Arc<SqliteBackend>> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Internal("SqliteBackend::open needs a tokio runtime".into())
        })?;
        let conn = schema::open_writer(path)?;
        let revision = schema::last_revision(&conn)?;
        let compacted = schema::compacted_revision(&conn)?;
        let live = schema::live_keys(&conn)?;
        let shared = Arc::new(Shared::new(revision, compacted, live));

        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            conn,
            revision,
            compacted,
            shared: Arc::clone(&shared),
            rx,
            pending_compactions: Vec::new(),
            last_batch: 0,
        };
        let writer_thread = std::thread::Builder::new()
            .name("kone-db-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Internal(format!("starting writer thread: {e}")))?;

        let mut window = Window::new(opts.keep_revisions, opts.keep_duration);
        window.record(Instant::now(), revision);
        let store = Arc::new(SqliteBackend {
            path: path.to_owned(),
            shared,
            reads: Arc::new(ReadPool::new(path.to_owned())),
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            window: Mutex::new(window),
            watch_buffer: opts.watch_buffer,
            rt: rt.clone(),
        });
        if !opts.compact_interval.is_zero() {
            rt.spawn(compact_periodically(
                Arc::downgrade(&store),
                opts.compact_interval,
            ));
        }
        tracing::info!(
            path = %path.display(),
            revision,
            compacted,
            live_keys = live,
            "datastore opened"
        );
        Ok(store)
    }

    /// Compact as far as the keep window allows; returns the compacted
    /// revision.
    pub async fn compact_now(&self) -> StoreResult<i64> {
        let target = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.target(Instant::now(), self.shared.current())
        };
        self.compact_to(target).await
    }

    /// Compact up to `revision` regardless of the window (for tests and
    /// tools); returns the compacted revision.
    pub async fn compact_to(&self, revision: i64) -> StoreResult<i64> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Compact(CompactRequest {
            target: revision,
            reply,
        }))?;
        rx.await.map_err(|_| writer_gone())?
    }

    #[cfg(test)]
    pub(super) fn watcher_count(&self) -> usize {
        self.shared.watchers.watcher_count()
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, req: Request) -> StoreResult<()> {
        self.writer
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(req)
            .map_err(|_| writer_gone())
    }

    async fn write(&self, op: Op) -> StoreResult<Written> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Write(WriteRequest { op, reply }))?;
        rx.await.map_err(|_| writer_gone())?
    }

    fn file_size(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn writer_gone() -> StoreError {
    StoreError::Internal("datastore writer has stopped".into())
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit;
        // waiting for it means a reopen of the same file never races it.
        self.writer = None;
        if let Some(t) = self.writer_thread.take() {
            if t.join().is_err() {
                warn!("datastore writer thread panicked");
            }
        }
    }
}

async fn compact_periodically(store: Weak<SqliteBackend>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        if let Err(e) = store.compact_now().await {
            warn!("datastore compaction failed: {e}");
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let key = key.to_owned();
        self.reads.run(move |c| read::get(c, &key)).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> StoreResult<ListResult> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.reads
            .run(move |c| read::list(c, &prefix, start_after.as_deref(), limit, revision))
            .await
    }

    async fn count(&self, prefix: &str) -> StoreResult<u64> {
        let prefix = prefix.to_owned();
        self.reads.run(move |c| read::count(c, &prefix)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<i64> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
        };
        Ok(self.write(op).await?.revision)
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> StoreResult<i64> {
        let op = Op::Update {
            key: key.to_owned(),
            value,
            expected,
        };
        Ok(self.write(op).await?.revision)
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> StoreResult<(i64, KeyValue)> {
        let op = Op::Delete {
            key: key.to_owned(),
            expected,
        };
        let w = self.write(op).await?;
        let prev = w
            .prev
            .ok_or_else(|| StoreError::Internal("delete returned no previous value".into()))?;
        Ok((w.revision, prev))
    }

    fn watch(&self, prefix: &str, after_revision: i64) -> StoreResult<WatchReceiver> {
        let compacted = self.shared.compacted();
        if after_revision < compacted {
            return Err(StoreError::Compacted {
                requested: after_revision,
                compacted,
            });
        }
        watch::start(
            &self.rt,
            &self.shared.watchers,
            Arc::clone(&self.reads),
            prefix,
            after_revision,
            self.watch_buffer,
        )
    }

    fn current_revision(&self) -> i64 {
        self.shared.current()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            current_revision: self.shared.current(),
            compacted_revision: self.shared.compacted(),
            db_size_bytes: self.file_size(),
            live_keys: u64::try_from(self.shared.live_keys()).unwrap_or(0),
        }
    }
}
