//! An idle supervisor gives back the memory it only borrowed. Serving a
//! request or starting a container maps a few megabytes of kone's (and
//! libc's) code, and the kernel maps whole runs of neighbouring pages on
//! each fault. Those pages belong to the page cache and are shared by
//! every kone process, but they count in each supervisor's RSS for as long
//! as they stay mapped, and a pod's supervisor spends almost all its life
//! waiting in poll. After a quiet spell it unmaps the clean, read-only
//! file pages (a later fault maps them back from the page cache, which
//! still holds them) and returns free heap to the kernel.

use std::time::{Duration, Instant};

/// Quiet time before the supervisor lets go.
const AFTER: Duration = Duration::from_secs(2);

pub struct Idle {
    last_busy: Instant,
    released: bool,
}

impl Idle {
    pub fn new() -> Idle {
        Idle {
            last_busy: Instant::now(),
            released: false,
        }
    }

    pub fn busy(&mut self) {
        self.last_busy = Instant::now();
        self.released = false;
    }

    /// When the event loop must wake to release, unless it already has.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.released).then(|| self.last_busy + AFTER)
    }

    /// Releases once the quiet spell is over.
    pub fn tick(&mut self) {
        if self.deadline().is_some_and(|at| Instant::now() >= at) {
            release();
            self.released = true;
        }
    }
}

fn release() {
    let ranges = match std::fs::read_to_string("/proc/self/smaps") {
        Ok(smaps) => clean_file_mappings(&smaps),
        Err(e) => {
            tracing::debug!(error = %e, "reading /proc/self/smaps");
            Vec::new()
        }
    };
    crate::malloc::release_freed_memory();
    // Last, so that as little code as possible runs (and is mapped back)
    // after the unmapping.
    for (start, len) in ranges {
        // SAFETY: the range is a whole mapping of an unchanged file that is
        // not writable and holds no copied-on-write page, so dropping its
        // pages loses nothing: the next access maps the same bytes back
        // from the file. The process has one thread.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }
}

/// The mappings of /proc/self/smaps that are backed by a file, not
/// writable, and have no anonymous or dirty page: (start, length).
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    struct Candidate {
        range: (usize, usize),
        clean: bool,
    }
    let mut found = Vec::new();
    let mut current: Option<Candidate> = None;
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            if let Some(c) = current.take().filter(|c| c.clean) {
                found.push(c.range);
            }
            current = header.map(|range| Candidate { range, clean: true });
            continue;
        }
        let Some(c) = current.as_mut() else { continue };
        let mut field = line.split_whitespace();
        if let (Some("Anonymous:" | "Private_Dirty:" | "Shared_Dirty:"), Some(kb)) =
            (field.next(), field.next())
        {
            if kb != "0" {
                c.clean = false;
            }
        }
    }
    if let Some(c) = current.filter(|c| c.clean) {
        found.push(c.range);
    }
    found
}

/// `Some(header)` when `line` starts a mapping; the header is the mapping's
/// range when it is a read-only mapping of a file.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    let inode = parts.nth(2)?;
    let path = parts.next().unwrap_or("");
    let read_only_file = perms.as_bytes().get(1) == Some(&b'-')
        && perms.ends_with('p')
        && inode != "0"
        && path.starts_with('/');
    Some(read_only_file.then_some((start, end - start)))
}

#[cfg(test)]
mod tests {
    use super::clean_file_mappings;

    const SMAPS: &str = "\
00400000-00600000 r-xp 00000000 fe:01 1234                               /usr/local/bin/kone
Size:               2048 kB
Rss:                 900 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00600000-00610000 r--p 00200000 fe:01 1234                               /usr/local/bin/kone
Size:                 64 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
00610000-00620000 rw-p 00210000 fe:01 1234                               /usr/local/bin/kone
Anonymous:             0 kB
01000000-01021000 rw-p 00000000 00:00 0                                  [heap]
Anonymous:           132 kB
7f0000000000-7f0000028000 r--p 00000000 fe:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000100000-7f0000101000 r--s 00000000 00:05 7                          /memfd:x (deleted)
Anonymous:             0 kB
7ffd0000a000-7ffd0000c000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_read_only_private_file_mappings_are_released() {
        assert_eq!(
            clean_file_mappings(SMAPS),
            vec![(0x400000, 0x200000), (0x7f0000000000, 0x28000)]
        );
    }
}
