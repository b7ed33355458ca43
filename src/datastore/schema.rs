//! On-disk layout of the log, and how connections to it are opened.
//!
//! `kv` is the log: one row per revision, the row id *is* the revision.
//! A delete is a tombstone row (`deleted = 1`, no value: the value is in the
//! row `prev_revision` points at). `current` maps each live key to its latest
//! row so reads of the present never scan history. `meta` holds the
//! compacted revision, written in the same transaction as the compaction, so
//! a reader's snapshot always agrees with the rows it can see.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{StoreError, StoreResult};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    value           BLOB
);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS current (
    name TEXT    PRIMARY KEY,
    id   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0);
";

/// Writers and readers wait this long for a lock held by another process
/// (e.g. a backup) before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Open the one read-write connection, creating the file and schema if new.
pub(super) fn open_writer(path: &Path) -> StoreResult<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Internal(format!("creating {}: {e}", dir.display())))?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Only takes effect before the first table exists, i.e. on a new file;
    // later it is a no-op, which is what we want (switching needs a VACUUM).
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "{}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    // FULL: the WAL is fsynced on every commit, so an acknowledged write
    // survives power loss too, not only a process crash. Group commit makes
    // that one fsync per batch, not per write.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoint every ~16 MiB of WAL rather than 4: a page rewritten by
    // many batches is copied back once, and the checkpoint's two fsyncs
    // stall the writer less often. journal_size_limit trims the file after.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // The writer walks the same index pages batch after batch; keep them
    // in memory (up to 32 MiB, allocated only as used).
    conn.pragma_update(None, "cache_size", -32 * 1024)?;
    conn.execute_batch(SCHEMA)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Open a read-only connection for the read pool.
pub(super) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Serve pages straight from the OS cache instead of copying them into
    // a private cache per connection; modest so 32-bit devices cope.
    conn.pragma_update(None, "mmap_size", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The highest revision ever written (AUTOINCREMENT keeps it even when the
/// row itself is compacted away).
pub(super) fn last_revision(conn: &Connection) -> StoreResult<i64> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'kv'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0))
}

pub(super) fn compacted_revision(conn: &Connection) -> StoreResult<i64> {
    let rev: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(rev.unwrap_or(0))
}

pub(super) fn live_keys(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT count(*) FROM current", [], |r| r.get(0))?)
}
