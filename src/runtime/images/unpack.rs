//! Unpacking one layer blob into a snapshot folder, overlayfs style.
//!
//! Each snapshot holds only its own layer's content: whiteouts (`.wh.NAME`)
//! become character devices 0/0 and opaque markers (`.wh..wh..opq`) become the
//! `trusted.overlay.opaque=y` xattr on their folder, so snapshots stack as
//! overlay lowerdirs. Paths with `..` are rejected, absolute paths are taken
//! relative to the snapshot root, and symlinks are never followed while
//! creating entries: an entry whose parent path crosses a symlink (or any
//! non-folder) is rejected.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::digest::{Digest, HashingReader};

/// Compression of a blob, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Open a file, decompressing it by its magic bytes.
pub fn open_decompressed(path: &Path) -> io::Result<(Box<dyn Read>, Compression)> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        let got = file.read(&mut magic[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let comp = Compression::sniff(&magic[..n]);
    let file = File::open(path)?;
    let reader: Box<dyn Read> = match comp {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
    };
    Ok((reader, comp))
}

/// Unpack the layer blob at `blob` into `dest` (which must not exist yet),
/// checking that the uncompressed stream hashes to `diff_id`. Returns the
/// uncompressed size. On error `dest` may be half written: the caller
/// unpacks into a staging folder and throws it away.
pub fn unpack_layer(blob: &Path, diff_id: &Digest, dest: &Path) -> anyhow::Result<u64> {
    let (reader, _) =
        open_decompressed(blob).with_context(|| format!("opening {}", blob.display()))?;
    unpack_stream(reader, diff_id, dest)
}

/// Like [`unpack_layer`], from an uncompressed tar stream.
pub fn unpack_stream(reader: impl Read, diff_id: &Digest, dest: &Path) -> anyhow::Result<u64> {
    fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().context("reading the layer")? {
        let mut entry = entry.context("reading the layer")?;
        apply_entry(dest, &mut entry, &mut dirs)?;
    }
    let (got, size) = archive.into_inner().finish().context("reading the layer")?;
    if &got != diff_id {
        bail!("layer content does not match its diff_id: expected {diff_id}, got {got}");
    }
    // Folder mtimes last, deepest first, since adding entries changes them.
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, mtime) in dirs {
        set_mtime(&path, mtime)?;
    }
    Ok(size)
}

/// The path of an entry relative to the root: `.` and leading `/` dropped,
/// `..` rejected.
pub fn clean_path(path: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                bail!(
                    "path traversal in layer entry {:?}",
                    path.display().to_string()
                )
            }
        }
    }
    Ok(out)
}

/// Create the missing folders of `rel`'s parent under `root`, refusing to go
/// through anything that is not a real folder (a symlink above all).
fn ensure_parents(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    ensure_dir_chain(root, parent)
}

fn ensure_dir_chain(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => bail!(
                "layer entry goes through non-folder {:?} (symlinks are not followed)",
                rel.display().to_string()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))?;
            }
            Err(e) => return Err(e).with_context(|| format!("checking {}", cur.display())),
        }
    }
    Ok(())
}

/// Remove what is at `path` (not following symlinks), unless it is a folder
/// and `keep_dir` is set. Returns whether a folder was kept.
fn clear(path: &Path, keep_dir: bool) -> anyhow::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(path).with_context(|| format!("replacing {}", path.display()))?;
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    Ok(false)
}

fn apply_entry<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<R>,
    dirs: &mut Vec<(PathBuf, u64)>,
) -> anyhow::Result<()> {
    let raw = entry.path().context("layer entry path")?.into_owned();
    let rel = clean_path(&raw)?;
    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let mtime = header.mtime().unwrap_or(0);
    let Some(file_name) = rel.file_name().map(|n| n.to_os_string()) else {
        // The root itself ("./"): keep our own folder as it is.
        return Ok(());
    };
    let file_name = file_name.as_bytes();

    // Whiteouts.
    if let Some(rest) = file_name.strip_prefix(b".wh.") {
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        ensure_dir_chain(root, &parent_rel)?;
        let parent = root.join(&parent_rel);
        if rest == b".wh..opq" {
            set_xattr(&parent, "trusted.overlay.opaque", b"y")
                .with_context(|| format!("marking {} opaque", parent_rel.display()))?;
        } else if rest.starts_with(b".wh.") || rest.is_empty() || rest == b"." || rest == b".." {
            // aufs metadata (.wh..wh.plnk and the like): nothing for overlay.
        } else {
            let target = parent.join(std::ffi::OsStr::from_bytes(rest));
            clear(&target, false)?;
            mknod(&target, libc::S_IFCHR, 0)
                .with_context(|| format!("creating whiteout {}", target.display()))?;
            lchown(&target, uid, gid)?;
        }
        return Ok(());
    }

    ensure_parents(root, &rel)?;
    let path = root.join(&rel);
    match kind {
        tar::EntryType::Directory => {
            if !clear(&path, true)? {
                fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
            }
            lchown(&path, uid, gid)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            dirs.push((path, mtime));
            return Ok(());
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            clear(&path, false)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            io::copy(entry, &mut f).with_context(|| format!("writing {}", path.display()))?;
            drop(f);
            // chown first: it clears setuid bits that chmod then sets.
            lchown(&path, uid, gid)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .context("symlink target")?
                .ok_or_else(|| anyhow!("symlink {} without a target", rel.display()))?;
            clear(&path, false)?;
            std::os::unix::fs::symlink(&target, &path)
                .with_context(|| format!("creating symlink {}", path.display()))?;
            lchown(&path, uid, gid)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()
                .context("hard link target")?
                .ok_or_else(|| anyhow!("hard link {} without a target", rel.display()))?;
            let target_rel = clean_path(&target)?;
            // The link source must be inside this layer, reached without
            // going through a symlink, and not a folder.
            ensure_parents(root, &target_rel)?;
            let source = root.join(&target_rel);
            match fs::symlink_metadata(&source) {
                Ok(m) if !m.file_type().is_dir() => {}
                _ => bail!(
                    "hard link {} to {} which is not a file of this layer",
                    rel.display(),
                    target_rel.display()
                ),
            }
            if source == path {
                return Ok(());
            }
            clear(&path, false)?;
            fs::hard_link(&source, &path)
                .with_context(|| format!("creating hard link {}", path.display()))?;
            return Ok(());
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let fmt = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            clear(&path, false)?;
            mknod(&path, fmt | mode, libc::makedev(major, minor))
                .with_context(|| format!("creating device {}", path.display()))?;
            lchown(&path, uid, gid)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        other => {
            tracing::debug!(entry = %rel.display(), kind = ?other, "skipping layer entry");
            return Ok(());
        }
    }
    apply_xattrs(&path, entry)?;
    set_mtime(&path, mtime)
}

fn apply_xattrs<R: Read>(path: &Path, entry: &mut tar::Entry<R>) -> anyhow::Result<()> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in exts.flatten() {
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if let Err(e) = set_xattr(path, name, ext.value_bytes()) {
                tracing::warn!(path = %path.display(), xattr = name, error = %e, "cannot set xattr");
            }
        }
    }
    Ok(())
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"))
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: a valid C string; mknod does not keep the pointer.
    if unsafe { libc::mknod(p.as_ptr(), mode, dev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn lchown(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        // Not root (unit tests as a user): keep our own ownership.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("chown {}", path.display())),
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::other("NUL in xattr name"))?;
    // SAFETY: valid C strings and a buffer with its length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read an xattr (not following symlinks); None if it is not set.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::other("NUL in xattr name"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer with its length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODATA) {
            return Ok(None);
        }
        return Err(e);
    }
    buf.truncate(rc as usize);
    Ok(Some(buf))
}

fn set_mtime(path: &Path, mtime: u64) -> anyhow::Result<()> {
    let p = cpath(path)?;
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("setting mtime of {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    /// Build a tar with raw names (the tar crate's builder refuses `..`).
    fn layer(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_700_000_000);
            let (name, data): (&str, &[u8]) = match e {
                E::Dir(n) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    (n, b"")
                }
                E::File(n, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    (n, d)
                }
                E::Sym(n, t) | E::Hard(n, t) => {
                    h.set_entry_type(if matches!(e, E::Sym(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_mode(0o777);
                    let gnu = h.as_gnu_mut().expect("gnu header");
                    gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
                    (n, b"")
                }
            };
            {
                let gnu = h.as_gnu_mut().expect("gnu header");
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    fn unpack(tar: &[u8], dest: &Path) -> anyhow::Result<u64> {
        unpack_stream(tar, &Digest::of(tar), dest)
    }

    #[test]
    fn unpacks_files_dirs_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("fs");
        let t = layer(&[
            E::Dir("./bin/"),
            E::File("./bin/busybox", b"ELF"),
            E::Sym("bin/sh", "busybox"),
            E::Hard("bin/ash", "bin/busybox"),
            E::File("/etc/passwd", b"root"),
        ]);
        unpack(&t, &dest).expect("unpack");
        assert_eq!(fs::read(dest.join("bin/busybox")).expect("read"), b"ELF");
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).expect("link"),
            Path::new("busybox")
        );
        assert_eq!(fs::read(dest.join("bin/ash")).expect("read"), b"ELF");
        assert_eq!(fs::read(dest.join("etc/passwd")).expect("read"), b"root");
    }

    #[test]
    fn whiteouts_become_overlay_markers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("fs");
        let t = layer(&[
            E::Dir("etc/"),
            E::File("etc/.wh.motd", b""),
            E::File("var/cache/.wh..wh..opq", b""),
            E::File("var/.wh..wh.plnk", b""),
        ]);
        unpack(&t, &dest).expect("unpack");
        let meta = fs::symlink_metadata(dest.join("etc/motd")).expect("whiteout");
        assert!(meta.file_type().is_char_device());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.rdev(), 0);
        assert!(!dest.join("etc/.wh.motd").exists());
        assert_eq!(
            get_xattr(&dest.join("var/cache"), "trusted.overlay.opaque").expect("xattr"),
            Some(b"y".to_vec())
        );
        assert!(!dest.join("var/cache/.wh..wh..opq").exists());
        assert!(fs::read_dir(dest.join("var"))
            .expect("var")
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".wh.")));
    }

    #[test]
    fn rejects_path_traversal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        let cases: Vec<Vec<u8>> = vec![
            layer(&[E::File("../outside/x", b"evil")]),
            layer(&[E::File("a/../../outside/x", b"evil")]),
            // A symlink out of the root, then a file through it.
            layer(&[E::Sym("escape", "../outside"), E::File("escape/x", b"evil")]),
            layer(&[E::Sym("escape", "/"), E::File("escape/tmp/x", b"evil")]),
            // A hard link to something outside.
            layer(&[E::Hard("h", "../outside/x")]),
            // A whiteout through a symlink.
            layer(&[E::Sym("escape", "../outside"), E::File("escape/.wh.x", b"")]),
        ];
        for (i, t) in cases.iter().enumerate() {
            let dest = tmp.path().join(format!("fs{i}"));
            let err = unpack(t, &dest).expect_err("must be rejected");
            assert!(
                format!("{err:#}").contains("path traversal")
                    || format!("{err:#}").contains("non-folder")
                    || format!("{err:#}").contains("not a file of this layer"),
                "case {i}: {err:#}"
            );
            assert_eq!(
                fs::read_dir(&outside).expect("outside").count(),
                0,
                "case {i} wrote outside"
            );
        }
    }

    #[test]
    fn diff_id_mismatch_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = layer(&[E::File("a", b"1")]);
        let err = unpack_stream(&t[..], &Digest::of(b"other"), &tmp.path().join("fs"))
            .expect_err("mismatch");
        assert!(format!("{err:#}").contains("diff_id"), "{err:#}");
    }
}
