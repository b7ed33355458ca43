//! Helpers for the `kone images` tests: run the CLI, build the project's
//! test image, list a store's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `kone images ARGS --data-dir DATA`, logging errors only (so stderr holds
/// just the CLI's own message).
pub fn kone_images(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kone"));
    cmd.arg("images");
    cmd.args(args);
    cmd.arg("--data-dir").arg(data);
    cmd.env("KONE_LOG", "error");
    cmd.output().expect("run kone")
}

/// Stdout of a command that must succeed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a command that must fail with exit code 1 and one line.
pub fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1; stdout: {}; stderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("kone images: "), "{err}");
    err
}

/// Every path under a folder with its size (files) or kind, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(format!("{rel} {}", m.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Build kone.test/busybox:1 into `out` (busybox-docker.tar and
/// busybox-oci.tar). False, with a message, only when busybox-static cannot
/// be had on this machine.
pub fn build_image(out: &Path) -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-image.sh");
    let res = Command::new("bash")
        .arg(&script)
        .arg(out)
        .output()
        .expect("run build-test-image.sh");
    if res.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: busybox-static cannot be installed: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        return false;
    }
    assert!(
        res.status.success(),
        "build-test-image.sh failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    true
}

/// The project's test image archives, built once per test binary.
pub fn test_image_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("test-image-{}", std::process::id()));
        assert!(build_image(&dir), "building the test image failed");
        dir
    })
}
