//! Container logs as the kubelet serves them (`/containerLogs/…`): the CRI
//! files of a container's current or previous run, with kubectl's options
//! (follow, tailLines, sinceSeconds/sinceTime, timestamps, limitBytes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

use crate::runtime::logs::parse;

#[derive(Debug, Default, Clone)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

impl LogOptions {
    /// From the query string the API server forwards (kubelet names).
    pub fn from_query(q: &std::collections::HashMap<String, String>) -> Result<LogOptions, String> {
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
        let num = |k: &str| -> Result<Option<i64>, String> {
            q.get(k)
                .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {k} {v:?}")))
                .transpose()
        };
        let mut since = None;
        if let Some(s) = num("sinceSeconds")? {
            since = Some(chrono::Utc::now() - chrono::Duration::seconds(s.max(0)));
        }
        if let Some(t) = q.get("sinceTime") {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| format!("invalid sinceTime {t:?}"))?;
            since = Some(t.with_timezone(&chrono::Utc));
        }
        Ok(LogOptions {
            follow: flag("follow"),
            previous: flag("previous"),
            tail_lines: num("tailLines")?.map(|n| n.max(0) as usize),
            since,
            timestamps: flag("timestamps"),
            limit_bytes: num("limitBytes")?.map(|n| n.max(0) as usize),
        })
    }
}

/// The log file of the container's latest run, or of the one before it.
pub fn log_file(container_dir: &Path, previous: bool) -> Option<PathBuf> {
    let mut runs: Vec<(u32, PathBuf)> = std::fs::read_dir(container_dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".log")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    runs.sort();
    let pick = if previous {
        runs.len().checked_sub(2)?
    } else {
        runs.len().checked_sub(1)?
    };
    runs.into_iter().nth(pick).map(|(_, p)| p)
}

/// Streams the log into `tx` as kubectl shows it. `running` tells whether
/// the writer is still alive (for follow).
pub async fn stream(
    path: PathBuf,
    opts: LogOptions,
    tx: mpsc::Sender<Bytes>,
    running: impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(tokio::fs::File::open(&path).await?);
    let mut budget = opts.limit_bytes.unwrap_or(usize::MAX);
    // tailLines: the start offset of the last N complete lines.
    if let Some(n) = opts.tail_lines {
        let data = tokio::fs::read(&path).await?;
        let mut starts: Vec<usize> = vec![0];
        starts.extend(
            data.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let complete = starts.len().saturating_sub(1);
        let first = complete.saturating_sub(n);
        reader
            .seek(std::io::SeekFrom::Start(starts[first] as u64))
            .await?;
    }
    let mut line = Vec::new();
    let mut pending = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n > 0 && line.ends_with(b"\n") {
            let Some(r) = parse(&line) else { continue };
            if let Some(since) = opts.since {
                let t = chrono::DateTime::parse_from_rfc3339(r.time).ok();
                if t.is_some_and(|t| t < since) {
                    continue;
                }
            }
            if pending.is_empty() && opts.timestamps {
                pending.extend_from_slice(r.time.as_bytes());
                pending.push(b' ');
            }
            pending.extend_from_slice(r.content);
            if r.partial {
                continue;
            }
            pending.push(b'\n');
            let out = std::mem::take(&mut pending);
            let take = out.len().min(budget);
            budget -= take;
            if tx.send(Bytes::copy_from_slice(&out[..take])).await.is_err() || budget == 0 {
                return Ok(());
            }
            continue;
        }
        if n > 0 {
            // An incomplete record: wait for the rest of it.
            reader.seek(std::io::SeekFrom::Current(-(n as i64))).await?;
        }
        if !opts.follow || !running() {
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tail_timestamps_partials_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(
            &path,
            "2026-01-01T00:00:01Z stdout F one\n2026-01-01T00:00:02Z stderr P tw\n2026-01-01T00:00:02Z stderr F o\n2026-01-01T00:00:03Z stdout F three\n",
        )
        .unwrap();
        let collect = |opts: LogOptions| {
            let path = path.clone();
            async move {
                let (tx, mut rx) = mpsc::channel(16);
                stream(path, opts, tx, || false).await.unwrap();
                let mut out = Vec::new();
                while let Ok(b) = rx.try_recv() {
                    out.extend_from_slice(&b);
                }
                String::from_utf8(out).unwrap()
            }
        };
        assert_eq!(collect(LogOptions::default()).await, "one\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(collect(tail).await, "three\n");
        let ts = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(collect(ts).await, "2026-01-01T00:00:03Z three\n");
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(collect(since).await, "two\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(collect(limit).await, "one\nt");
    }
}
