//! The one writer: a dedicated thread owning the read-write connection.
//!
//! Group commit: it takes every request waiting in its queue, applies them
//! all in one transaction (one fsync), then publishes the events and answers
//! each request. Preconditions (exists? expected revision?) are checked
//! inside the transaction before each write, so a failed compare-and-swap
//! answers only its own request. Revisions are assigned here, explicitly, so
//! the create revision of a new key is known before its row is inserted.
//!
//! Compaction runs on this thread too (see compact.rs), in chunks with the
//! queue served in between, so it never fights the writer for SQLite's lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::compact;
use super::read::kv_from_row;
use super::schema;
use super::shared::Shared;
use super::{Event, EventKind, KeyValue, StoreError, StoreResult};

/// Upper bound on writes per transaction, so one batch can't hold the
/// lock (or the readers' view of new data) for long.
const MAX_BATCH: usize = 1024;
/// Longest a batch waits for stragglers (see `gather`): far below an fsync.
const LINGER_MAX: Duration = Duration::from_micros(1000);
const LINGER_STEP: Duration = Duration::from_micros(50);

pub(super) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

/// A successful write: its revision and what the key held before.
pub(super) struct Written {
    pub(super) revision: i64,
    pub(super) prev: Option<KeyValue>,
}

pub(super) struct WriteRequest {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<StoreResult<Written>>,
}

pub(super) struct CompactRequest {
    pub(super) target: i64,
    pub(super) reply: oneshot::Sender<StoreResult<i64>>,
}

pub(super) enum Request {
    Write(WriteRequest),
    Compact(CompactRequest),
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    /// Last revision committed.
    pub(super) revision: i64,
    /// Last revision compacted (committed to `meta`).
    pub(super) compacted: i64,
    pub(super) shared: Arc<Shared>,
    pub(super) rx: mpsc::UnboundedReceiver<Request>,
    /// Compactions asked for while one was running.
    pub(super) pending_compactions: Vec<CompactRequest>,
    /// Size of the previous batch: how many clients are likely active.
    pub(super) last_batch: usize,
}

struct CloseWatches(Arc<Shared>);

impl Drop for CloseWatches {
    fn drop(&mut self) {
        self.0.watchers.close();
    }
}

/// One write's outcome inside a batch, before commit.
struct Applied {
    result: StoreResult<Written>,
    event: Option<Event>,
    live_delta: i64,
}

impl Writer {
    pub(super) fn run(mut self) {
        // However this thread ends (even by a panic), end the watches too,
        // or they would wait forever for events that cannot come.
        let _close_watches = CloseWatches(Arc::clone(&self.shared));
        while let Some(first) = self.rx.blocking_recv() {
            let mut writes = Vec::new();
            self.route(first, &mut writes);
            self.gather(&mut writes);
            self.last_batch = writes.len();
            self.apply(writes);
            while let Some(req) = self.pending_compactions.pop() {
                let result = compact::run(&mut self, req.target);
                let _ = req.reply.send(result);
            }
        }
        debug!("datastore writer stopped at revision {}", self.revision);
    }

    fn route(&mut self, req: Request, writes: &mut Vec<WriteRequest>) {
        match req {
            Request::Write(w) => writes.push(w),
            Request::Compact(c) => self.pending_compactions.push(c),
        }
    }

    /// Collect the batch. The clients answered by the last commit come back
    /// one by one as their tasks get scheduled; committing the first few
    /// alone would split them into a small and a big batch, paying the fsync
    /// twice. So while fewer than last time are here and more keep
    /// arriving, wait a moment (a lone client, last batch 1, never waits).
    fn gather(&mut self, writes: &mut Vec<WriteRequest>) {
        self.take_queued(writes);
        let deadline = Instant::now() + LINGER_MAX;
        while writes.len() < self.last_batch && Instant::now() < deadline {
            let before = writes.len();
            std::thread::sleep(LINGER_STEP);
            self.take_queued(writes);
            if writes.len() == before {
                break;
            }
        }
    }

    /// Move whatever is queued right now into `writes` (up to a batch).
    fn take_queued(&mut self, writes: &mut Vec<WriteRequest>) {
        while writes.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(req) => self.route(req, writes),
                Err(_) => break,
            }
        }
    }

    /// Apply one batch of what is queued now; used between compaction
    /// chunks. One batch, not "until empty": under a steady stream of
    /// writes the queue never empties and compaction would starve.
    pub(super) fn serve_queued(&mut self) {
        let mut writes = Vec::new();
        self.take_queued(&mut writes);
        self.apply(writes);
    }

    /// Apply a batch in one transaction and answer every request.
    fn apply(&mut self, batch: Vec<WriteRequest>) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let ops: Vec<&Op> = batch.iter().map(|w| &w.op).collect();
        match self.apply_in_tx(&ops) {
            Ok(applied) => {
                let mut events = Vec::new();
                let mut delta = 0;
                let mut replies = Vec::with_capacity(applied.len());
                for a in applied {
                    events.extend(a.event);
                    delta += a.live_delta;
                    replies.push(a.result);
                }
                self.shared.add_live_keys(delta);
                self.shared.set_current(self.revision);
                if !events.is_empty() {
                    self.shared.watchers.publish(self.revision, &events);
                }
                let n = batch.len();
                for (req, result) in batch.into_iter().zip(replies) {
                    let _ = req.reply.send(result);
                }
                debug!(
                    writes = n,
                    events = events.len(),
                    revision = self.revision,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "datastore batch committed"
                );
            }
            Err(e) if batch.len() > 1 => {
                // Something beyond a precondition failed (disk full, I/O);
                // the whole transaction rolled back. Retry one by one so a
                // single bad write cannot fail its neighbours.
                warn!(
                    "datastore batch of {} failed ({e}); retrying singly",
                    batch.len()
                );
                for req in batch {
                    self.apply(vec![req]);
                }
            }
            Err(e) => {
                warn!("datastore write failed: {e}");
                for req in batch {
                    let _ = req.reply.send(Err(StoreError::Internal(e.to_string())));
                }
            }
        }
    }

    /// On error nothing was committed and `self.revision` is unchanged.
    fn apply_in_tx(&mut self, ops: &[&Op]) -> StoreResult<Vec<Applied>> {
        let start = self.revision;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut rev = start;
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(apply_one(&tx, op, &mut rev)?);
            }
            tx.commit()?;
            Ok((out, rev))
        })();
        match result {
            Ok((out, rev)) => {
                self.revision = rev;
                Ok(out)
            }
            Err(e) => {
                // Belt and braces: trust the file, not our counter.
                if let Ok(rev) = schema::last_revision(&self.conn) {
                    self.revision = rev;
                }
                Err(e)
            }
        }
    }
}

/// Check one write's precondition and, if it holds, append its row.
/// `Err` only for storage failures; precondition failures are `Applied`.
fn apply_one(conn: &Connection, op: &Op, rev: &mut i64) -> StoreResult<Applied> {
    let key = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
    };
    let cur = conn
        .prepare_cached(
            "SELECT c.name, k.id, k.create_revision, k.value
             FROM current c JOIN kv k ON k.id = c.id WHERE c.name = ?1",
        )?
        .query_row([key], kv_from_row)
        .optional()?;
    let refused = |e: StoreError| Applied {
        result: Err(e),
        event: None,
        live_delta: 0,
    };
    let next = *rev + 1;
    let applied = match (op, cur) {
        (Op::Create { .. }, Some(_)) => return Ok(refused(StoreError::AlreadyExists)),
        (Op::Update { .. } | Op::Delete { .. }, None) => return Ok(refused(StoreError::NotFound)),
        (Op::Update { expected, .. }, Some(cur)) if cur.mod_revision != *expected => {
            return Ok(refused(StoreError::Conflict {
                current: cur.mod_revision,
            }))
        }
        (
            Op::Delete {
                expected: Some(expected),
                ..
            },
            Some(cur),
        ) if cur.mod_revision != *expected => {
            return Ok(refused(StoreError::Conflict {
                current: cur.mod_revision,
            }))
        }
        (Op::Create { key, value }, None) => {
            insert_row(conn, next, key, next, 0, false, Some(value))?;
            conn.prepare_cached("INSERT INTO current (name, id) VALUES (?1, ?2)")?
                .execute(params![key, next])?;
            put_applied(key, value, next, next, None)
        }
        (Op::Update { key, value, .. }, Some(cur)) => {
            let create = cur.create_revision;
            insert_row(
                conn,
                next,
                key,
                create,
                cur.mod_revision,
                false,
                Some(value),
            )?;
            conn.prepare_cached("UPDATE current SET id = ?2 WHERE name = ?1")?
                .execute(params![key, next])?;
            put_applied(key, value, create, next, Some(cur))
        }
        (Op::Delete { key, .. }, Some(cur)) => {
            let create = cur.create_revision;
            insert_row(conn, next, key, create, cur.mod_revision, true, None)?;
            conn.prepare_cached("DELETE FROM current WHERE name = ?1")?
                .execute([key])?;
            Applied {
                result: Ok(Written {
                    revision: next,
                    prev: Some(cur.clone()),
                }),
                event: Some(Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: cur.value.clone(),
                        create_revision: create,
                        mod_revision: next,
                    },
                    prev: Some(cur),
                }),
                live_delta: -1,
            }
        }
    };
    *rev = next;
    Ok(applied)
}

fn insert_row(
    conn: &Connection,
    id: i64,
    key: &str,
    create_revision: i64,
    prev_revision: i64,
    deleted: bool,
    value: Option<&Vec<u8>>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO kv (id, name, create_revision, prev_revision, deleted, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        key,
        create_revision,
        prev_revision,
        deleted,
        value
    ])?;
    Ok(())
}

/// A successful create or update: the answer and the event it publishes.
fn put_applied(key: &str, value: &[u8], create: i64, next: i64, prev: Option<KeyValue>) -> Applied {
    let live_delta = i64::from(prev.is_none());
    Applied {
        result: Ok(Written {
            revision: next,
            prev: None,
        }),
        event: Some(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_string(),
                value: value.to_vec(),
                create_revision: create,
                mod_revision: next,
            },
            prev,
        }),
        live_delta,
    }
}
