//! The content-addressed store: blobs, image records and snapshots on disk,
//! and the operations on them (list, inspect, remove, garbage-collect).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::digest::{chain_ids, Digest};
use super::staging::Staging;

/// One layer of an image record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed or not, as it came).
    pub digest: Digest,
    /// Digest of the uncompressed layer tar.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    pub media_type: String,
}

/// What the store knows about one image name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalised name (`docker.io/library/busybox:latest`), or the manifest
    /// digest for an archive entry that carried no name.
    pub name: String,
    /// Digest of the image manifest (synthesised, as an OCI manifest, for
    /// docker-save archives, which carry none).
    pub digest: Digest,
    pub media_type: String,
    pub config_digest: Digest,
    pub layers: Vec<LayerRecord>,
    /// Bytes of manifest, config and layer blobs.
    pub size: u64,
    /// `created` from the image config, when it has one.
    pub created: Option<String>,
    /// When this record was written (RFC 3339).
    pub imported: String,
}

impl ImageRecord {
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// Chain IDs of the layers, bottom layer first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.diff_ids())
    }

    /// Digests of every blob this record keeps alive.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut v = vec![self.digest.clone(), self.config_digest.clone()];
        v.extend(self.layers.iter().map(|l| l.digest.clone()));
        v
    }
}

/// What a garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub snapshots: usize,
    pub bytes: u64,
}

/// The image store under `<data-dir>/agent/`.
#[derive(Debug, Clone)]
pub struct Store {
    agent: PathBuf,
}

/// An exclusive lock on the store, released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Open (creating the folders of) the store of a data dir.
    pub fn open(data_dir: &Path) -> anyhow::Result<Store> {
        let store = Store {
            agent: data_dir.join("agent"),
        };
        for d in [
            store.blobs_dir(),
            store.records_dir(),
            store.tmp_dir(),
            store.snapshots_dir(),
        ] {
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        // The lock file is part of the layout from the start.
        drop(store.lock()?);
        Ok(store)
    }

    pub fn agent_dir(&self) -> &Path {
        &self.agent
    }

    /// The k3s airgap folder: image tarballs to import at agent start.
    pub fn airgap_dir(&self) -> PathBuf {
        self.agent.join("images")
    }

    pub fn content_dir(&self) -> PathBuf {
        self.agent.join("content")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.agent.join("content/blobs/sha256")
    }

    pub fn records_dir(&self) -> PathBuf {
        self.agent.join("content/images")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.agent.join("content/tmp")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.agent.join("snapshots")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn read_blob(&self, d: &Digest) -> anyhow::Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).with_context(|| format!("reading blob {d}"))
    }

    /// `snapshots/<chainid-hex>`: holds `fs/` and `info.json`.
    /// Container bundles (config.json, root, upper layer) live here.
    pub fn containers_dir(&self) -> PathBuf {
        self.agent_dir().join("containers")
    }

    /// Records which snapshots a container's root is made of.
    pub fn pin_snapshots(&self, bundle: &Path, record: &ImageRecord) -> io::Result<()> {
        let list: Vec<String> = record
            .chain_ids()
            .iter()
            .map(|d| d.hex().to_string())
            .collect();
        fs::write(bundle.join("snapshots"), list.join("\n"))
    }

    fn snapshots_of_containers(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.containers_dir()) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path().join("snapshots")).ok())
            .flat_map(|t| t.lines().map(String::from).collect::<Vec<_>>())
            .collect()
    }

    pub fn snapshot_path(&self, chain_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(chain_id.hex())
    }

    /// The unpacked content of one layer: an overlay lowerdir.
    pub fn snapshot_fs(&self, chain_id: &Digest) -> PathBuf {
        self.snapshot_path(chain_id).join("fs")
    }

    pub fn has_snapshot(&self, chain_id: &Digest) -> bool {
        self.snapshot_fs(chain_id).is_dir()
    }

    /// The snapshot folders of an image, top layer first, as overlayfs wants
    /// its `lowerdir=` list.
    pub fn snapshot_dirs(&self, record: &ImageRecord) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = record
            .chain_ids()
            .iter()
            .map(|c| self.snapshot_fs(c))
            .collect();
        v.reverse();
        v
    }

    /// Take the store's exclusive lock (imports, removals and GC).
    pub fn lock(&self) -> anyhow::Result<StoreLock> {
        let path = self.content_dir().join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("locking the image store");
        }
        Ok(StoreLock { _file: file })
    }

    /// The record file of a (normalised) name.
    pub fn record_path(&self, name: &str) -> PathBuf {
        let mut escaped = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                escaped.push(b as char);
            } else {
                escaped.push_str(&format!("%{b:02X}"));
            }
        }
        if escaped.len() > 200 {
            escaped = format!("long-{}", Digest::of(name.as_bytes()).hex());
        }
        self.records_dir().join(format!("{escaped}.json"))
    }

    /// Every image record, sorted by name.
    pub fn list(&self) -> anyhow::Result<Vec<ImageRecord>> {
        let dir = self.records_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let bytes = fs::read(entry.path())?;
            let rec: ImageRecord = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", entry.path().display()))?;
            out.push(rec);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The record of a name, given as a user would (`busybox` finds
    /// `docker.io/library/busybox:latest`); `sha256:…` names an unnamed image.
    pub fn get(&self, name: &str) -> anyhow::Result<Option<ImageRecord>> {
        let full = resolve_name(name)?;
        match fs::read(self.record_path(&full)) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("parsing the record of {full}")
                })?))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading the record of {full}")),
        }
    }

    /// The record and the image config of a name.
    pub fn inspect(&self, name: &str) -> anyhow::Result<(ImageRecord, ImageConfiguration)> {
        let rec = self
            .get(name)?
            .ok_or_else(|| anyhow!("no such image {name}"))?;
        let bytes = self.read_blob(&rec.config_digest)?;
        let config: ImageConfiguration = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing config {}", rec.config_digest))?;
        Ok((rec, config))
    }

    /// Write a record atomically (replacing one of the same name).
    pub fn put_record(&self, rec: &ImageRecord) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(rec)?;
        write_atomic(&self.record_path(&rec.name), &bytes)
            .with_context(|| format!("writing the record of {}", rec.name))
    }

    /// Remove the record of a name; blobs and snapshots stay until [`Store::gc`].
    /// Returns the removed record, or None if there was none.
    pub fn remove(&self, name: &str) -> anyhow::Result<Option<ImageRecord>> {
        let _lock = self.lock()?;
        let Some(rec) = self.get(name)? else {
            return Ok(None);
        };
        let path = self.record_path(&rec.name);
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        sync_dir(&self.records_dir())?;
        Ok(Some(rec))
    }

    /// Remove blobs and snapshots that no image record references, and
    /// leftovers of interrupted imports.
    ///
    /// Snapshots under a container's root (listed in its bundle's
    /// `snapshots` file) stay while the container exists.
    pub fn gc(&self) -> anyhow::Result<GcReport> {
        let _lock = self.lock()?;
        let records = self.list()?;
        let blobs: HashSet<String> = records
            .iter()
            .flat_map(|r| r.blobs())
            .map(|d| d.hex().to_string())
            .collect();
        let mut snaps: HashSet<String> = records
            .iter()
            .flat_map(|r| r.chain_ids())
            .map(|d| d.hex().to_string())
            .collect();
        // A container keeps its layers even when its image is removed.
        snaps.extend(self.snapshots_of_containers());
        let mut report = GcReport::default();
        for entry in fs::read_dir(self.blobs_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if blobs.contains(&name) {
                continue;
            }
            let meta = entry.metadata()?;
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            tracing::info!(blob = %name, bytes = meta.len(), "gc: removed blob");
            report.blobs += 1;
            report.bytes += meta.len();
        }
        for entry in fs::read_dir(self.snapshots_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if snaps.contains(&name) {
                continue;
            }
            // Move it out of sight first, so a half-removed snapshot is
            // never taken for a whole one.
            let doomed = self
                .tmp_dir()
                .join(format!("gc-{name}-{}", std::process::id()));
            fs::rename(entry.path(), &doomed)
                .with_context(|| format!("moving {} away", entry.path().display()))?;
            report.bytes += du(&doomed);
            fs::remove_dir_all(&doomed)
                .with_context(|| format!("removing {}", doomed.display()))?;
            tracing::info!(snapshot = %name, "gc: removed snapshot");
            report.snapshots += 1;
        }
        // Leftovers of interrupted imports and pulls. Imports hold the store
        // lock, but pulls fetch without it: skip staging a live one owns.
        for entry in fs::read_dir(self.tmp_dir())? {
            let path = entry?.path();
            if Staging::in_use(&path) {
                continue;
            }
            let res = if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            res.with_context(|| format!("removing {}", path.display()))?;
        }
        for dir in [self.records_dir(), self.content_dir()] {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(report)
    }
}

/// Turn a user-given name into the key of its record.
pub fn resolve_name(name: &str) -> anyhow::Result<String> {
    if name.starts_with("sha256:") {
        Digest::parse(name).map_err(|e| anyhow!(e))?;
        return Ok(name.to_string());
    }
    super::reference::normalize(name).map_err(|e| anyhow!(e))
}

/// Write a file atomically: a temp file in the same folder, fsync, rename,
/// fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        rand::random::<u32>(),
        file_name.to_string_lossy()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes of regular files under a folder (not following symlinks).
fn du(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let d = Digest::of(b"x");
        let rec = ImageRecord {
            name: "kone.test/busybox:1".into(),
            digest: d.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: d.clone(),
            layers: vec![],
            size: 1,
            created: None,
            imported: "2024-01-01T00:00:00Z".into(),
        };
        store.put_record(&rec).expect("put");
        assert!(store
            .record_path("kone.test/busybox:1")
            .ends_with("kone.test%2Fbusybox%3A1.json"));
        assert_eq!(store.list().expect("list"), vec![rec.clone()]);
        assert_eq!(store.get("kone.test/busybox:1").expect("get"), Some(rec));
        assert!(store.get("busybox").expect("get").is_none());
        assert!(store.remove("kone.test/busybox:1").expect("rm").is_some());
        assert!(store.list().expect("list").is_empty());
    }
}
