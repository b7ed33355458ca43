//! The one way images enter the store, shared by import and pull: blobs are
//! checked into a staging folder, layers unpacked there into snapshots, and
//! only then are blobs and snapshots renamed into the store and, last, the
//! image records written. A failure anywhere leaves the store as it was.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::digest::Digest;
use super::import::{ImportEvent, Imported};
use super::store::{sync_dir, ImageRecord, Store, StoreLock};
use super::unpack::unpack_layer;

/// The lock file inside each staging folder: held while the folder is in
/// use, so garbage collection can tell live staging from leftovers.
const OWNER_LOCK: &str = "owner.lock";

/// A staging folder under `content/tmp/`, removed on drop.
pub struct Staging {
    dir: PathBuf,
    _owner: File,
}

impl Staging {
    /// A fresh staging folder; `kind` (`import`, `pull`) names it for people.
    pub fn new(store: &Store, kind: &str) -> anyhow::Result<Staging> {
        let dir = store.tmp_dir().join(format!(
            "{kind}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(dir.join("blobs"))
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::create_dir_all(dir.join("snapshots"))?;
        let owner = File::create(dir.join(OWNER_LOCK))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(owner.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error()).context("locking a new staging folder");
        }
        Ok(Staging { dir, _owner: owner })
    }

    /// Whether `dir` is a staging folder some live process still uses.
    pub fn in_use(dir: &Path) -> bool {
        let Ok(f) = OpenOptions::new().read(true).open(dir.join(OWNER_LOCK)) else {
            return false;
        };
        // SAFETY: flock on a file descriptor we own; released when `f` closes.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        rc != 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }

    pub fn staged_blob(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join(d.hex())
    }

    /// A fresh path for a blob being written, before its digest is known
    /// to be right.
    pub fn partial_path(&self) -> PathBuf {
        self.dir
            .join("blobs")
            .join(format!("partial-{:08x}", rand::random::<u32>()))
    }

    /// The blob's file, staged or already in the store.
    pub fn blob_or_store(&self, store: &Store, d: &Digest) -> PathBuf {
        let p = self.staged_blob(d);
        if p.exists() {
            p
        } else {
            store.blob_path(d)
        }
    }

    /// Keep a fully written and checked `partial` file as the staged blob
    /// `d`, or drop it when the store or staging has that blob already.
    /// Returns whether the store had it.
    pub fn keep_partial(&self, store: &Store, partial: &Path, d: &Digest) -> io::Result<bool> {
        let existed = store.has_blob(d);
        if existed || self.staged_blob(d).exists() {
            fs::remove_file(partial)?;
        } else {
            fs::rename(partial, self.staged_blob(d))?;
        }
        Ok(existed)
    }

    /// Stage an in-memory blob (already checked) unless the store has it.
    pub fn put_blob(&self, store: &Store, d: &Digest, bytes: &[u8]) -> anyhow::Result<()> {
        if store.has_blob(d) || self.staged_blob(d).exists() {
            return Ok(());
        }
        let mut f = File::create(self.staged_blob(d))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    }

    /// Unpack the records' layers into staged snapshots, move blobs and
    /// snapshots into the store, then write one record per name (a record
    /// with no names is named by its manifest digest). Needs the store lock.
    pub fn install(
        &self,
        store: &Store,
        _lock: &StoreLock,
        images: Vec<(ImageRecord, Vec<String>)>,
        progress: &mut dyn FnMut(&ImportEvent),
    ) -> anyhow::Result<Vec<Imported>> {
        // Blobs found in the store earlier must still be there: a pull
        // checks before it takes the lock, and gc may have run since.
        for (rec, _) in &images {
            for d in rec.blobs() {
                if !self.blob_or_store(store, &d).is_file() {
                    bail!("blob {d} left the store while this image was fetched (gc?); retry");
                }
            }
        }
        let mut staged_snaps: HashSet<Digest> = HashSet::new();
        for (rec, _) in &images {
            let chains = rec.chain_ids();
            for (i, layer) in rec.layers.iter().enumerate() {
                let chain = &chains[i];
                let reused = store.has_snapshot(chain) || staged_snaps.contains(chain);
                if !reused {
                    let snap = self.dir.join("snapshots").join(chain.hex());
                    fs::create_dir_all(&snap)?;
                    let blob = self.blob_or_store(store, &layer.digest);
                    let bytes = unpack_layer(&blob, &layer.diff_id, &snap.join("fs"))
                        .with_context(|| format!("unpacking layer {}", layer.digest))?;
                    let info = serde_json::json!({
                        "chain_id": chain,
                        "parent": i.checked_sub(1).map(|p| chains[p].clone()),
                        "diff_id": layer.diff_id,
                        "size": bytes,
                    });
                    fs::write(snap.join("info.json"), serde_json::to_vec_pretty(&info)?)?;
                    tracing::info!(chain_id = %chain, diff_id = %layer.diff_id, bytes, "unpacked layer");
                    staged_snaps.insert(chain.clone());
                }
                progress(&ImportEvent::Unpacked {
                    chain_id: chain.clone(),
                    diff_id: layer.diff_id.clone(),
                    reused,
                });
            }
        }

        self.commit(store)?;
        let mut out = Vec::new();
        for (rec, names) in images {
            let names = if names.is_empty() {
                vec![rec.digest.to_string()]
            } else {
                names
            };
            for name in names {
                let old = store.get(&name)?;
                let rec = ImageRecord {
                    name: name.clone(),
                    ..rec.clone()
                };
                store.put_record(&rec)?;
                let replaced = old.map(|o| o.digest).filter(|d| d != &rec.digest);
                tracing::info!(image = %name, digest = %rec.digest, "stored image");
                out.push(Imported {
                    name,
                    digest: rec.digest.clone(),
                    replaced,
                });
            }
        }
        Ok(out)
    }

    /// Move staged blobs and snapshots into the store.
    fn commit(&self, store: &Store) -> anyhow::Result<()> {
        for entry in fs::read_dir(self.dir.join("blobs"))? {
            let entry = entry?;
            let Some(d) = Digest::from_hex(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            if !store.has_blob(&d) {
                fs::rename(entry.path(), store.blob_path(&d))
                    .with_context(|| format!("storing blob {d}"))?;
            }
        }
        sync_dir(&store.blobs_dir())?;
        for entry in fs::read_dir(self.dir.join("snapshots"))? {
            let entry = entry?;
            let Some(c) = Digest::from_hex(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            if !store.snapshot_path(&c).exists() {
                fs::rename(entry.path(), store.snapshot_path(&c))
                    .with_context(|| format!("storing snapshot {c}"))?;
            }
        }
        sync_dir(&store.snapshots_dir())?;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove staging folder");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_spares_live_staging_and_removes_leftovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let live = Staging::new(&store, "pull").expect("staging");
        let leftover = store.tmp_dir().join("pull-1-dead");
        fs::create_dir_all(leftover.join("blobs")).expect("mkdir");
        File::create(leftover.join(OWNER_LOCK)).expect("lock file");
        store.gc().expect("gc");
        assert!(live.dir.is_dir(), "gc removed a staging folder in use");
        assert!(!leftover.exists(), "gc kept a leftover");
        let dir = live.dir.clone();
        drop(live);
        assert!(!dir.exists());
    }
}
