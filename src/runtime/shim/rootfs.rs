//! A container's root: the image's snapshots as overlay lowerdirs under one
//! read-write upper of its own.

use std::fs;
use std::io;

use anyhow::{bail, Context};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::protocol::RootfsDesc;

pub fn mount_overlay(r: &RootfsDesc) -> anyhow::Result<()> {
    if r.lowerdirs.is_empty() {
        bail!("the image has no layers");
    }
    for d in [&r.upperdir, &r.workdir, &r.target] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if is_mountpoint(&r.target)? {
        return Ok(());
    }
    let lower: Vec<String> = r
        .lowerdirs
        .iter()
        .map(|p| p.to_string_lossy().replace(':', "\\:"))
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        r.upperdir.display(),
        r.workdir.display()
    );
    // The kernel takes mount options of at most one page.
    if options.len() + ",volatile".len() >= 4096 {
        bail!(
            "overlay options too long ({} bytes for {} layers)",
            options.len(),
            r.lowerdirs.len()
        );
    }
    // `volatile` (Linux 5.10+): no sync of the upper filesystem, at unmount
    // or ever. An upper lives and dies with its container, so that sync only
    // cost time (tens of ms per container on a busy disk). A volatile upper
    // leaves a marker that refuses the next mount; a retried create reuses
    // the upper of its own failed attempt, so the marker is cleared first.
    let _ = fs::remove_dir(r.workdir.join("work/incompat/volatile"));
    let mount_with = |options: &str| {
        mount(
            Some("overlay"),
            &r.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options),
        )
    };
    match mount_with(&format!("{options},volatile")) {
        Err(nix::errno::Errno::EINVAL) => mount_with(&options),
        other => other,
    }
    .with_context(|| format!("mounting the container root at {}", r.target.display()))
}

pub fn unmount(r: &RootfsDesc) -> io::Result<()> {
    match umount2(&r.target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_mountpoint(path: &std::path::Path) -> io::Result<bool> {
    let target = fs::canonicalize(path)?;
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| std::path::Path::new(m) == target))
}
