//! `kone images`: import both archives of the project's test image, list,
//! inspect the snapshot, reject a corrupted archive without a trace, rm + gc.
//!
//! Needs busybox-static (scripts/build-test-image.sh installs it with apt-get
//! when missing); skipped with a message only when it cannot be had.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::images::{build_image, kone_images as kone, listing, ok};

/// Flip one byte in the middle of the first entry of `archive` whose name
/// matches `pred` and is larger than 1 KiB.
fn corrupt_copy(archive: &Path, dest: &Path, pred: impl Fn(&str) -> bool) {
    let mut bytes = std::fs::read(archive).expect("read archive");
    let mut ar = tar::Archive::new(std::fs::File::open(archive).expect("open archive"));
    let mut at = None;
    for e in ar.entries().expect("entries") {
        let e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        if pred(&name) && e.size() > 1024 {
            at = Some(e.raw_file_position() + e.size() / 2);
            break;
        }
    }
    let at = at.expect("a layer entry") as usize;
    bytes[at] ^= 0x55;
    std::fs::write(dest, bytes).expect("write corrupted copy");
}

#[test]
fn import_list_corrupt_rm_gc() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = tmp.path().join("images");
    if !build_image(&images) {
        return;
    }
    let docker = images.join("busybox-docker.tar");
    let oci = images.join("busybox-oci.tar");
    let data = tmp.path().join("data");

    // Import both: same image content, same config digest. The docker
    // archive's manifest is synthesised (it has none), so the manifest
    // digests differ; one name, the later import (OCI) wins.
    let out = ok(&kone(
        &data,
        &[
            "import",
            docker.to_str().expect("utf-8"),
            oci.to_str().expect("utf-8"),
        ],
    ));
    assert!(out.contains("layer sha256:"), "{out}");
    assert!(out.contains("imported kone.test/busybox:1"), "{out}");

    let ls = ok(&kone(&data, &["ls"]));
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{ls}");
    assert!(
        lines[0].contains("DIGEST") && lines[0].contains("SIZE") && lines[0].contains("CREATED")
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("kone.test/busybox:1 "))
            .count(),
        1,
        "{ls}"
    );
    assert_eq!(lines.len(), 2, "{ls}");

    // inspect: record + config; the snapshot holds an executable busybox.
    let inspect = ok(&kone(&data, &["inspect", "kone.test/busybox:1"]));
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    assert_eq!(v["name"], "kone.test/busybox:1");
    assert_eq!(v["config"]["config"]["Cmd"], serde_json::json!(["sh"]));
    let snaps = v["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 1);
    let fs_dir = PathBuf::from(snaps[0].as_str().expect("path"));
    assert!(fs_dir.starts_with(data.join("agent/snapshots")));
    let bb = fs_dir.join("bin/busybox");
    let meta = std::fs::metadata(&bb).expect("bin/busybox in the snapshot");
    use std::os::unix::fs::PermissionsExt;
    assert!(meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    let run = Command::new(&bb).arg("true").status().expect("run busybox");
    assert!(run.success());
    assert_eq!(
        std::fs::read_link(fs_dir.join("bin/sh")).expect("bin/sh"),
        Path::new("busybox")
    );
    let tmp_mode = std::fs::metadata(fs_dir.join("tmp"))
        .expect("tmp")
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);

    // A corrupted copy of each archive fails clearly and changes nothing.
    let before = listing(&data);
    for (src, pred, what) in [
        (
            &oci,
            Box::new(|n: &str| n.starts_with("blobs/sha256/")) as Box<dyn Fn(&str) -> bool>,
            "does not match its digest",
        ),
        (
            &docker,
            Box::new(|n: &str| n.ends_with("layer.tar")),
            "does not match its diff_id",
        ),
    ] {
        let bad = tmp.path().join("corrupt.tar");
        corrupt_copy(src, &bad, pred);
        let out = kone(&data, &["import", bad.to_str().expect("utf-8")]);
        assert!(!out.status.success(), "corrupted import succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("kone images:") && err.contains(what), "{err}");
        assert_eq!(listing(&data), before, "store changed by a failed import");
    }
    // Same into an empty store: nothing but the empty layout.
    let fresh = tmp.path().join("fresh");
    let bad = tmp.path().join("corrupt.tar");
    let out = kone(&fresh, &["import", bad.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        listing(&fresh)
            .iter()
            .all(|l| l.ends_with('/') || l.ends_with("lock 0")),
        "{:?}",
        listing(&fresh)
    );

    // rm + gc remove the blobs and snapshots.
    let blobs = data.join("agent/content/blobs/sha256");
    assert!(std::fs::read_dir(&blobs).expect("blobs").count() > 0);
    ok(&kone(&data, &["rm", "kone.test/busybox:1"]));
    assert_eq!(ok(&kone(&data, &["ls", "-q"])), "");
    let out = kone(&data, &["rm", "kone.test/busybox:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("kone images: no such image"));
    let gc = ok(&kone(&data, &["gc"]));
    assert!(gc.contains("snapshots"), "{gc}");
    assert_eq!(std::fs::read_dir(&blobs).expect("blobs").count(), 0);
    assert_eq!(
        std::fs::read_dir(data.join("agent/snapshots"))
            .expect("snapshots")
            .count(),
        0
    );
}
