//! Container log files in the CRI format the kubelet reads
//! (`<RFC3339Nano> stdout|stderr F|P <line>`), rotated by size like the
//! kubelet's container log manager: `N.log` moves to `N.log.<timestamp>` and
//! only the newest `max_files` files are kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

/// A line longer than this is written in pieces tagged P (partial).
pub const MAX_LINE: usize = 16 * 1024;

pub struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl CriLog {
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<CriLog> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    pub fn write(&mut self, stream: &str, partial: bool, line: &[u8]) -> io::Result<()> {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let tag = if partial { "P" } else { "F" };
        let mut rec = Vec::with_capacity(line.len() + ts.len() + 12);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(tag.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(line);
        rec.push(b'\n');
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        if self.size >= self.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp = Utc::now().format("%Y%m%d-%H%M%S%.6f");
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{stamp}"));
        fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        self.prune()
    }

    /// Keeps the live file plus the newest `max_files - 1` rotated ones.
    fn prune(&self) -> io::Result<()> {
        let (Some(dir), Some(base)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.", base.to_string_lossy());
        let mut rotated: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(self.max_files - 1);
        for old in &rotated[..excess] {
            fs::remove_file(old)?;
        }
        Ok(())
    }
}

/// Splits a stream into log lines: complete lines, and pieces of at most
/// MAX_LINE bytes of a longer one.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(line, partial)` for each record.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = &self.pending[start..end];
            for (i, chunk) in line.chunks(MAX_LINE).enumerate() {
                let last = (i + 1) * MAX_LINE >= line.len();
                emit(chunk, !last);
            }
            if line.is_empty() {
                emit(b"", false);
            }
            start = end + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            emit(&self.pending, true);
            self.pending = rest;
        }
    }

    /// At end of stream, what is left is a final line without a newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = vec![];
        for c in chunks {
            s.feed(c, |l, p| out.push((l.to_vec(), p)));
        }
        s.finish(|l, p| out.push((l.to_vec(), p)));
        out
    }

    #[test]
    fn lines_across_chunks_and_long_lines() {
        let out = split(&[b"hel", b"lo\nwor", b"ld\r\n\nend"]);
        let lines: Vec<(&[u8], bool)> = out.iter().map(|(l, p)| (l.as_slice(), *p)).collect();
        assert_eq!(
            lines,
            [
                (&b"hello"[..], false),
                (b"world\r", false),
                (b"", false),
                (b"end", false)
            ]
        );
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let out = split(&[&long, b"\n"]);
        assert_eq!(
            out.iter().map(|(l, p)| (l.len(), *p)).collect::<Vec<_>>(),
            [(MAX_LINE, true), (MAX_LINE, true), (5, false)]
        );
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut log = CriLog::open(&path, 200, 3).unwrap();
        for i in 0..40 {
            log.write("stdout", false, format!("line {i}").as_bytes())
                .unwrap();
        }
        let files = fs::read_dir(dir.path().join("c")).unwrap().count();
        assert_eq!(files, 3);
        let live = fs::read_to_string(&path).unwrap();
        assert!(live.is_empty() || live.contains(" stdout F line "));
    }
}
