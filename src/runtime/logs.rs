//! Reading CRI-format container logs (what the supervisor writes).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// One record: `<time> <stream> <F|P> <content>`.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// A piece of a longer line: no newline follows it.
    pub partial: bool,
    pub content: &'a [u8],
}

pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    Some(Record {
        time,
        stream,
        partial: tag == b"P",
        content,
    })
}

/// Reads the log from the start; with `follow`, keeps reading (across
/// rotations) until the writer is done and all is read. `finished(d)`
/// waits at most `d` for the writer to be done and says whether it is.
pub fn read(
    path: &Path,
    follow: bool,
    mut on_record: impl FnMut(&Record) -> io::Result<()>,
    mut finished: impl FnMut(Duration) -> bool,
) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut ino = reader.get_ref().metadata()?.ino();
    let mut line = Vec::new();
    // Waits grow from 1 ms to 100 ms: a short-lived container is done
    // within milliseconds, a long-running one is not asked 1000 times a second.
    let mut pause = Duration::from_millis(1);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n > 0 && line.ends_with(b"\n") {
            if let Some(r) = parse(&line) {
                on_record(&r)?;
            }
            pause = Duration::from_millis(1);
            continue;
        }
        // An incomplete last line: go back and wait for the rest of it.
        if n > 0 {
            reader.seek(SeekFrom::Current(-(n as i64)))?;
        }
        if !follow {
            return Ok(());
        }
        // Rotated: the path names a new file; finish the old one first.
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.ino() != ino && n == 0 {
                reader = BufReader::new(File::open(path)?);
                ino = meta.ino();
                continue;
            }
        }
        if finished(pause) {
            // One more pass: lines written just before the exit.
            line.clear();
            while reader.read_until(b'\n', &mut line)? > 0 {
                if let Some(r) = parse(&line) {
                    on_record(&r)?;
                }
                line.clear();
            }
            return Ok(());
        }
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_records() {
        let r = parse(b"2026-01-01T00:00:00.000000001Z stdout F hello world\n").unwrap();
        assert_eq!(
            (r.stream, r.partial, r.content),
            ("stdout", false, &b"hello world"[..])
        );
        let r = parse(b"2026-01-01T00:00:00Z stderr P ab").unwrap();
        assert!(r.partial);
        assert_eq!(
            parse(b"2026-01-01T00:00:00Z stdout F ").unwrap().content,
            b""
        );
        assert!(parse(b"garbage").is_none());
    }
}
