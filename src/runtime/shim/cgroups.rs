//! What the supervisor reads and cleans in the cgroup filesystems itself
//! (libcontainer manages each container's own cgroup).

use std::fs;
use std::path::PathBuf;

/// Every place a cgroup path can live on this host: each v1 hierarchy, the
/// v2 unified mount of a hybrid host, or the v2 root.
fn candidates(cgroup: &str) -> Vec<PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(rel))
        .collect();
    out.push(PathBuf::from("/sys/fs/cgroup").join(rel));
    out
}

/// Whether the kernel OOM-killed a process of this cgroup (v1 or v2 files).
pub fn oom_killed(cgroup: &str) -> bool {
    candidates(cgroup)
        .iter()
        .flat_map(|d| [d.join("memory.oom_control"), d.join("memory.events")])
        .filter_map(|p| fs::read_to_string(p).ok())
        .any(|text| {
            text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
}

/// Removes a pod's (by then empty) parent cgroup from every hierarchy.
pub fn remove(cgroup: &str) {
    if cgroup.trim_matches('/').is_empty() {
        return;
    }
    for dir in candidates(cgroup) {
        let _ = fs::remove_dir(dir);
    }
}
