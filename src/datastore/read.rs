//! Reads: a small pool of read-only connections, so that in WAL mode reads
//! run beside the writer thread instead of queueing behind it.
//!
//! Every multi-statement read runs in one transaction: SQLite then serves it
//! from one snapshot, so the revision a list reports, the compaction floor
//! it checks and the rows it returns all agree.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};

use super::schema;
use super::{Event, EventKind, KeyValue, ListResult, StoreError, StoreResult};

/// Connections kept open between reads; more may exist during a burst.
const MAX_IDLE: usize = 4;

pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` on a pooled connection, on tokio's blocking threads.
    pub(super) async fn run<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.with_conn(f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let out = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE && conn.is_autocommit() {
            idle.push(conn);
        }
        out
    }
}

/// The key's current value.
pub(super) fn get(conn: &mut Connection, key: &str) -> StoreResult<Option<KeyValue>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.name, k.id, k.create_revision, k.value
         FROM current c JOIN kv k ON k.id = c.id WHERE c.name = ?1",
    )?;
    Ok(stmt.query_row([key], kv_from_row).optional()?)
}

/// Live keys under `prefix`.
pub(super) fn count(conn: &mut Connection, prefix: &str) -> StoreResult<u64> {
    let mut args = Vec::new();
    let range = key_range("name", prefix, None, &mut args);
    let sql = format!("SELECT count(*) FROM current WHERE {range}");
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(args), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// See [`super::Backend::list`].
pub(super) fn list(
    conn: &mut Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: Option<i64>,
) -> StoreResult<ListResult> {
    let tx = conn.transaction()?;
    let (current, compacted) = positions(&tx)?;
    let at = match revision {
        None | Some(0) => current,
        Some(r) if r > current => return Err(StoreError::FutureRevision(r)),
        Some(r) if r < compacted => {
            return Err(StoreError::Compacted {
                requested: r,
                compacted,
            })
        }
        Some(r) => r,
    };
    // One row more than asked tells whether the list was cut short.
    let sql_limit = if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
    };
    let mut args = Vec::new();
    let sql = if at == current {
        // The present: walk `current` in key order, one lookup per key.
        let range = key_range("c.name", prefix, start_after, &mut args);
        args.push(Value::Integer(sql_limit));
        format!(
            "SELECT c.name, k.id, k.create_revision, k.value
             FROM current c JOIN kv k ON k.id = c.id
             WHERE {range} ORDER BY c.name LIMIT ?{}",
            args.len()
        )
    } else {
        // The past: per key, its newest row at or below `at`, unless that
        // row is a tombstone. Walking (name, id) in order streams, so a
        // page costs its size, not the whole prefix's history.
        let range = key_range("k.name", prefix, start_after, &mut args);
        args.push(Value::Integer(at));
        let at_param = args.len();
        args.push(Value::Integer(sql_limit));
        format!(
            "SELECT k.name, k.id, k.create_revision, k.value
             FROM kv k INDEXED BY kv_name_id
             WHERE {range} AND k.id <= ?{at_param} AND k.deleted = 0
               AND NOT EXISTS (SELECT 1 FROM kv n WHERE n.name = k.name
                               AND n.id > k.id AND n.id <= ?{at_param})
             ORDER BY k.name LIMIT ?{}",
            args.len()
        )
    };
    let mut items = {
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), kv_from_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let more = limit != 0 && items.len() > limit;
    items.truncate(if limit == 0 { items.len() } else { limit });
    Ok(ListResult {
        items,
        revision: at,
        more,
    })
}

/// Up to `limit` events under `prefix` with `after < revision <= upto`,
/// rebuilt from the log (with `prev` from the row each one replaced).
pub(super) fn replay(
    conn: &mut Connection,
    prefix: &str,
    after: i64,
    upto: i64,
    limit: usize,
) -> StoreResult<Vec<Event>> {
    let tx = conn.transaction()?;
    let (_, compacted) = positions(&tx)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let mut args = vec![Value::Integer(after), Value::Integer(upto)];
    let range = key_range("k.name", prefix, None, &mut args);
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT k.id, k.name, k.create_revision, k.deleted, k.value,
                p.id, p.create_revision, p.value
         FROM kv k LEFT JOIN kv p ON p.id = k.prev_revision
         WHERE k.id > ?1 AND k.id <= ?2 AND {range} ORDER BY k.id LIMIT ?{}",
        args.len()
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), event_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// (current revision, compacted revision) as of this transaction's snapshot.
fn positions(conn: &Connection) -> StoreResult<(i64, i64)> {
    // Reading both in one statement pins the snapshot before any other read.
    let (current, compacted): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'kv'),
                    (SELECT value FROM meta WHERE name = 'compacted')",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((current.unwrap_or(0), compacted.unwrap_or(0)))
}

/// Columns: name, id, create_revision, value.
pub(super) fn kv_from_row(r: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: r.get(0)?,
        mod_revision: r.get(1)?,
        create_revision: r.get(2)?,
        value: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let id: i64 = r.get(0)?;
    let key: String = r.get(1)?;
    let create_revision: i64 = r.get(2)?;
    let deleted: bool = r.get(3)?;
    let value: Option<Vec<u8>> = r.get(4)?;
    let prev = match r.get::<_, Option<i64>>(5)? {
        Some(prev_id) => Some(KeyValue {
            key: key.clone(),
            value: r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default(),
            create_revision: r.get(6)?,
            mod_revision: prev_id,
        }),
        None => None,
    };
    let (kind, value) = if deleted {
        // A tombstone carries no value: the deleted object is its prev.
        let last = prev.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        (EventKind::Delete, last)
    } else {
        (EventKind::Put, value.unwrap_or_default())
    };
    Ok(Event {
        kind,
        kv: KeyValue {
            key,
            value,
            create_revision,
            mod_revision: id,
        },
        prev,
    })
}

/// A `WHERE` fragment selecting keys under `prefix` (strictly after
/// `start_after` if given) as an index range, so SQLite seeks instead of
/// scanning. Its arguments are appended to `args`, numbered after those
/// already there.
fn key_range(col: &str, prefix: &str, start_after: Option<&str>, args: &mut Vec<Value>) -> String {
    let mut sql = match start_after {
        Some(after) if after >= prefix => {
            args.push(Value::Text(after.to_owned()));
            format!("{col} > ?{}", args.len())
        }
        _ => {
            args.push(Value::Text(prefix.to_owned()));
            format!("{col} >= ?{}", args.len())
        }
    };
    if let Some(end) = prefix_end(prefix) {
        args.push(Value::Text(end));
        sql.push_str(&format!(" AND {col} < ?{}", args.len()));
    }
    sql
}

/// The smallest string greater than every string that starts with
/// `prefix`, or None if there is none (empty prefix). UTF-8 byte order is
/// code point order, so bumping the last char works under SQLite's
/// BINARY collation.
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if next == 0xD800 {
            next = 0xE000; // skip the surrogate gap
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bumps_last_char() {
        assert_eq!(
            prefix_end("/registry/pods/"),
            Some("/registry/pods0".into())
        );
        assert_eq!(prefix_end("a\u{D7FF}"), Some("a\u{E000}".into()));
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}
