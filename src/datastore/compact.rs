//! Compaction: forget history older than a window, keep the file bounded.
//!
//! Compacting to revision C keeps, for every key, its newest row at or below
//! C (unless that is a tombstone) and every row above C. So reads at C or
//! later, and watches from C on, still work; anything older is `Compacted`.
//!
//! Each row knows the row it replaced (`prev_revision`), so compacting from
//! the previous floor C0 to C only has to look at rows in (C0, C]: each one
//! makes its predecessor garbage, and a tombstone is garbage itself. That is
//! an id-range scan, done in chunks, each its own short transaction that also
//! moves the floor in `meta`, so a crash mid-way leaves a consistent store.
//!
//! Runs on the writer thread, serving queued writes between chunks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::{params, TransactionBehavior};
use tracing::{debug, info, warn};

use super::schema;
use super::writer::Writer;
use super::StoreResult;

/// Revisions examined per transaction: small enough that a chunk takes a few
/// milliseconds, so writers barely notice.
const CHUNK: i64 = 500;
/// Free pages returned to the file system per transaction.
const VACUUM_PAGES: i64 = 2048;
/// How long the final WAL truncation may wait for readers to move on.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

/// Which revision may be compacted: keep the last `keep_revisions`
/// revisions *and* everything written in the last `keep_duration`, i.e.
/// whichever of the two keeps more.
pub(super) struct Window {
    keep_revisions: i64,
    keep_duration: Duration,
    /// (when, revision current then), oldest first: when a revision was
    /// written is known only to the granularity of these samples, and
    /// rounding always goes toward keeping more.
    samples: VecDeque<(Instant, i64)>,
}

impl Window {
    pub(super) fn new(keep_revisions: i64, keep_duration: Duration) -> Self {
        Window {
            keep_revisions: keep_revisions.max(0),
            keep_duration,
            samples: VecDeque::new(),
        }
    }

    /// Note the current revision now (call at startup and every tick).
    pub(super) fn record(&mut self, now: Instant, current: i64) {
        self.samples.push_back((now, current));
    }

    /// The revision to compact to, given the current one.
    pub(super) fn target(&mut self, now: Instant, current: i64) -> i64 {
        self.record(now, current);
        let by_count = current - self.keep_revisions;
        // Revisions <= a sample's revision were written before the sample
        // was taken, so a sample older than the window bounds what is old.
        let by_time = match now.checked_sub(self.keep_duration) {
            Some(cutoff) => {
                while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
                    self.samples.pop_front();
                }
                match self.samples.front() {
                    Some(&(t, rev)) if t <= cutoff => rev,
                    _ => 0,
                }
            }
            None => 0,
        };
        by_count.min(by_time).max(0)
    }
}

/// Compact to `target` (clamped to what exists); returns the new floor.
pub(super) fn run(w: &mut Writer, target: i64) -> StoreResult<i64> {
    let target = target.min(w.revision);
    if target <= w.compacted {
        return Ok(w.compacted);
    }
    let started = Instant::now();
    let from = w.compacted;
    let mut removed = 0usize;
    while w.compacted < target {
        let lo = w.compacted;
        let hi = (lo + CHUNK).min(target);
        // Raise the floor others see first: a watch must not start replaying
        // history that is about to go. (Readers check the floor in `meta`
        // inside their own snapshot, so they are safe either way.)
        w.shared.set_compacted(hi);
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        removed += tx
            .prepare_cached(
                "DELETE FROM kv WHERE id IN
                 (SELECT prev_revision FROM kv
                  WHERE id > ?1 AND id <= ?2 AND prev_revision > 0)",
            )?
            .execute(params![lo, hi])?;
        removed += tx
            .prepare_cached("DELETE FROM kv WHERE id > ?1 AND id <= ?2 AND deleted = 1")?
            .execute(params![lo, hi])?;
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compacted'")?
            .execute([hi])?;
        tx.commit()?;
        w.compacted = hi;
        w.serve_queued();
    }
    let deleting = started.elapsed();
    let freed = vacuum(w)?;
    let checkpoint = checkpoint(w);
    info!(
        from,
        to = target,
        rows_removed = removed,
        pages_freed = freed,
        wal_truncated = checkpoint,
        delete_ms = deleting.as_millis() as u64,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "datastore compacted"
    );
    Ok(target)
}

/// Give free pages back to the file system, a slice at a time.
fn vacuum(w: &mut Writer) -> StoreResult<i64> {
    let mut freed = 0;
    loop {
        let free: i64 = w
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free == 0 {
            return Ok(freed);
        }
        // incremental_vacuum frees one page per result row: it must be
        // stepped to the end, not just executed.
        let mut stmt = w
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        drop(stmt);
        let left: i64 = w
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if left >= free {
            return Ok(freed); // no progress (e.g. auto_vacuum is off)
        }
        freed += free - left;
        w.serve_queued();
    }
}

/// Copy the WAL into the file and truncate it, so its size does not stay at
/// its high-water mark. Best effort: a long reader can make it partial, and
/// it waits for readers only briefly, since writes queue behind it.
fn checkpoint(w: &mut Writer) -> bool {
    if let Err(e) = w.conn.busy_timeout(CHECKPOINT_WAIT) {
        debug!("datastore: cannot shorten busy timeout: {e}");
    }
    let res: rusqlite::Result<(i64, i64, i64)> =
        w.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
    if let Err(e) = w.conn.busy_timeout(schema::BUSY_TIMEOUT) {
        warn!("datastore: cannot restore busy timeout: {e}");
    }
    match res {
        Ok((0, _, _)) => true,
        Ok((_, log, done)) => {
            debug!(
                log,
                done, "datastore WAL checkpoint incomplete (readers busy)"
            );
            false
        }
        Err(e) => {
            debug!("datastore WAL checkpoint failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;
    use std::time::{Duration, Instant};

    #[test]
    fn window_keeps_whichever_is_larger() {
        let t0 = Instant::now();
        let mut w = Window::new(100, Duration::from_secs(300));
        w.record(t0, 1000);
        // Young process: time keeps everything.
        assert_eq!(w.target(t0 + Duration::from_secs(10), 5000), 0);
        // Window passed since the first sample: time allows up to 1000,
        // count allows 4900, keep more -> 1000.
        assert_eq!(w.target(t0 + Duration::from_secs(301), 5000), 1000);
        // Slow writes: count is the stricter bound.
        let mut w = Window::new(100, Duration::from_secs(300));
        w.record(t0, 1000);
        assert_eq!(w.target(t0 + Duration::from_secs(400), 1050), 950);
        // No time window: count alone.
        let mut w = Window::new(10, Duration::ZERO);
        assert_eq!(w.target(t0, 50), 40);
    }
}
