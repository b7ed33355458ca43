//! Importing image archives: `docker save` archives and OCI image-layout
//! archives, plain or gzip/zstd-compressed, one or many images each.
//!
//! The archive is read as a stream, in passes: the first keeps the small
//! metadata files (index.json, manifest.json, JSON blobs) in memory, the last
//! streams the layers into a staging folder, hashing each against its digest.
//! Layers are then unpacked (checking diff_ids) into staged snapshots and
//! installed by [`Staging::install`], the path pulls share: a bad archive
//! leaves nothing behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::digest::{Digest, HashingReader, HashingWriter};
use super::reference::normalize;
use super::staging::Staging;
use super::store::{write_atomic, ImageRecord, LayerRecord, Store};
use super::unpack::Compression;

/// Metadata files kept in memory while scanning: at most this each...
const SMALL_ENTRY: u64 = 1 << 20;
/// ...and this in all.
const SMALL_TOTAL: u64 = 64 << 20;
/// Largest JSON blob read on demand.
const MAX_JSON: u64 = 16 << 20;

pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Progress of an import, for a CLI to show.
#[derive(Debug, Clone)]
pub enum ImportEvent {
    /// A layer blob was read from the archive and checked.
    Layer {
        digest: Digest,
        bytes: u64,
        /// The store had it already.
        existed: bool,
    },
    /// A layer was unpacked into a snapshot (or an existing one reused).
    Unpacked {
        chain_id: Digest,
        diff_id: Digest,
        reused: bool,
    },
}

/// One image name written by an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub name: String,
    pub digest: Digest,
    /// The manifest digest the name pointed at before, if another.
    pub replaced: Option<Digest>,
}

/// Import one archive into the store.
///
/// The same name imported twice: the later import wins (its manifest digest
/// is recorded; `replaced` tells the one it displaced).
pub fn import_archive(
    store: &Store,
    path: &Path,
    progress: &mut dyn FnMut(&ImportEvent),
) -> anyhow::Result<Vec<Imported>> {
    let lock = store.lock()?;
    let mut archive = Archive::scan(path)?;
    let images = resolve(&mut archive)?;
    if images.is_empty() {
        bail!(
            "{}: no linux/{} image in the archive",
            path.display(),
            host_arch()
        );
    }
    let staging = Staging::new(store, "import")?;
    let mut layer_digests = read_layers(store, &staging, &archive, &images, progress)?;

    // Manifests (synthesised for docker archives) and configs, then records.
    let mut records = Vec::new();
    for img in &images {
        let mut layers = Vec::new();
        for (i, l) in img.layers.iter().enumerate() {
            let (digest, size, comp) = layer_digests
                .get(&l.archive_path)
                .cloned()
                .ok_or_else(|| anyhow!("layer {} was not read", l.archive_path))?;
            let media_type = l
                .media_type
                .clone()
                .unwrap_or_else(|| comp.layer_media_type().to_string());
            layers.push(LayerRecord {
                digest,
                diff_id: img.diff_ids[i].clone(),
                size,
                media_type,
            });
        }
        let (manifest_bytes, media_type) = match &img.manifest {
            Some((bytes, mt)) => (bytes.clone(), mt.clone()),
            None => (synthesise_manifest(img, &layers)?, OCI_MANIFEST.to_string()),
        };
        let digest = Digest::of(&manifest_bytes);
        staging.put_blob(store, &digest, &manifest_bytes)?;
        staging.put_blob(store, &img.config_digest, &img.config_bytes)?;
        let size = manifest_bytes.len() as u64
            + img.config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        records.push(ImageRecord {
            name: String::new(),
            digest,
            media_type,
            config_digest: img.config_digest.clone(),
            layers,
            size,
            created: img.created.clone(),
            imported: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    layer_digests.clear();
    let named = images
        .iter()
        .zip(records)
        .map(|(img, rec)| (rec, img.names.clone()))
        .collect();
    staging.install(store, &lock, named, progress)
}

/// Import every image tarball in `dir` (the k3s airgap folder,
/// `<data-dir>/agent/images/`): `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`.
/// A tarball is skipped when it is unchanged (size, mtime) since it was
/// imported and the store still has every image (by manifest digest) it
/// brought. Errors of one tarball are logged and do not stop the others;
/// the result lists what was imported.
pub fn import_airgap_dir(store: &Store, dir: &Path) -> anyhow::Result<Vec<Imported>> {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
            n.is_some_and(|n| {
                [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
                    .iter()
                    .any(|ext| n.ends_with(ext))
            }) && p.is_file()
        })
        .collect();
    files.sort();
    let state_path = store.content_dir().join("airgap.json");
    let mut state: BTreeMap<String, AirgapEntry> = fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let present: HashSet<Digest> = store.list()?.into_iter().map(|r| r.digest).collect();
    let mut out = Vec::new();
    for file in files {
        let key = file.to_string_lossy().into_owned();
        let meta = fs::metadata(&file)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        if let Some(prev) = state.get(&key) {
            if prev.size == meta.len()
                && prev.mtime_ns == mtime
                && prev.digests.iter().all(|d| present.contains(d))
            {
                tracing::debug!(file = %key, "airgap tarball already imported");
                continue;
            }
        }
        tracing::info!(file = %key, "importing airgap images");
        match import_archive(store, &file, &mut |_| {}) {
            Ok(imported) => {
                state.insert(
                    key,
                    AirgapEntry {
                        size: meta.len(),
                        mtime_ns: mtime,
                        digests: imported.iter().map(|i| i.digest.clone()).collect(),
                    },
                );
                out.extend(imported);
            }
            Err(e) => tracing::warn!(file = %key, error = format!("{e:#}"), "airgap import failed"),
        }
    }
    write_atomic(&state_path, &serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", state_path.display()))?;
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct AirgapEntry {
    size: u64,
    mtime_ns: u128,
    digests: Vec<Digest>,
}

/// The host's architecture, as OCI names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The entry of an index (or docker manifest list) for linux on this host's
/// architecture.
pub(super) fn pick_platform(index: &ImageIndex) -> Option<&Descriptor> {
    let arch = host_arch();
    index.manifests().iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
    })
}

// ---------------------------------------------------------------------------
// Reading archives.

/// An archive file and what the metadata pass found in it.
struct Archive {
    path: PathBuf,
    /// Small entries kept in memory, by normalised path.
    small: HashMap<String, Vec<u8>>,
    /// Sizes of regular entries.
    sizes: HashMap<String, u64>,
    /// Symlinks and hard links: path → the path they point at.
    links: HashMap<String, String>,
}

fn open_archive(path: &Path) -> anyhow::Result<tar::Archive<Box<dyn Read>>> {
    let (reader, _) = super::unpack::open_decompressed(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(tar::Archive::new(reader))
}

/// Normalise an entry path: no `./`, no leading `/`, no `..` escaping.
fn entry_key(raw: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in raw.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

impl Archive {
    fn scan(path: &Path) -> anyhow::Result<Archive> {
        let mut a = Archive {
            path: path.to_path_buf(),
            small: HashMap::new(),
            sizes: HashMap::new(),
            links: HashMap::new(),
        };
        let mut total = 0u64;
        let mut tar = open_archive(path)?;
        let ctx = || format!("reading {} as a tar archive", path.display());
        for entry in tar.entries().with_context(ctx)? {
            let mut entry = entry.with_context(ctx)?;
            let key = entry_key(&entry.path().with_context(ctx)?);
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(target)) = entry.link_name() {
                    let target = if kind.is_symlink() {
                        let base = Path::new(&key).parent().unwrap_or(Path::new(""));
                        entry_key(&base.join(target))
                    } else {
                        entry_key(&target)
                    };
                    a.links.insert(key, target);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.size();
            a.sizes.insert(key.clone(), size);
            let wanted = matches!(
                key.as_str(),
                "index.json" | "manifest.json" | "oci-layout" | "repositories"
            ) || ((key.ends_with(".json") || key.starts_with("blobs/"))
                && size <= SMALL_ENTRY
                && total + size <= SMALL_TOTAL);
            if wanted {
                let mut buf = Vec::new();
                (&mut entry)
                    .take(MAX_JSON)
                    .read_to_end(&mut buf)
                    .with_context(ctx)?;
                total += buf.len() as u64;
                a.small.insert(key, buf);
            }
        }
        Ok(a)
    }

    /// Follow links to the entry that holds the data.
    fn real(&self, key: &str) -> String {
        let mut k = key.to_string();
        for _ in 0..16 {
            match self.links.get(&k) {
                Some(t) => k = t.clone(),
                None => break,
            }
        }
        k
    }

    /// An entry's bytes (JSON-sized), from memory or by another pass.
    fn get(&mut self, key: &str) -> anyhow::Result<Vec<u8>> {
        let key = self.real(key);
        if let Some(b) = self.small.get(&key) {
            return Ok(b.clone());
        }
        let size = *self
            .sizes
            .get(&key)
            .ok_or_else(|| anyhow!("the archive has no {key}"))?;
        if size > MAX_JSON {
            bail!("{key} is too large for metadata ({size} bytes)");
        }
        let mut tar = open_archive(&self.path)?;
        for entry in tar.entries()? {
            let mut entry = entry?;
            if entry_key(&entry.path()?) == key && entry.header().entry_type().is_file() {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf)?;
                self.small.insert(key.clone(), buf.clone());
                return Ok(buf);
            }
        }
        bail!("the archive has no {key}")
    }

    /// A blob of an OCI layout, checked against its digest.
    fn blob(&mut self, digest: &Digest, size: Option<u64>) -> anyhow::Result<Vec<u8>> {
        let bytes = self.get(&format!("blobs/sha256/{}", digest.hex()))?;
        check_bytes(&bytes, digest, size)?;
        Ok(bytes)
    }
}

fn check_bytes(bytes: &[u8], digest: &Digest, size: Option<u64>) -> anyhow::Result<()> {
    if let Some(s) = size {
        if bytes.len() as u64 != s {
            bail!(
                "blob {digest} is {} bytes, its descriptor says {s} (truncated?)",
                bytes.len()
            );
        }
    }
    let got = Digest::of(bytes);
    if &got != digest {
        bail!("blob {digest} does not match its digest (got {got})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Resolving the images an archive holds.

struct LayerSource {
    /// Entry in the archive holding the blob.
    archive_path: String,
    /// Digest and size when a descriptor gives them (OCI).
    digest: Option<Digest>,
    size: Option<u64>,
    media_type: Option<String>,
}

struct ResolvedImage {
    names: Vec<String>,
    /// Manifest bytes and media type (None: docker archive, synthesised later).
    manifest: Option<(Vec<u8>, String)>,
    config_bytes: Vec<u8>,
    config_digest: Digest,
    created: Option<String>,
    diff_ids: Vec<Digest>,
    layers: Vec<LayerSource>,
}

pub(super) fn parse_digest(s: &str) -> anyhow::Result<Digest> {
    Digest::parse(s).map_err(|e| anyhow!(e))
}

fn resolve(archive: &mut Archive) -> anyhow::Result<Vec<ResolvedImage>> {
    if archive.small.contains_key("index.json") {
        resolve_oci(archive)
    } else if archive.small.contains_key("manifest.json") {
        resolve_docker(archive)
    } else {
        bail!(
            "{} is not an image archive (no index.json or manifest.json)",
            archive.path.display()
        )
    }
}

fn names_from_annotations(ann: Option<&HashMap<String, String>>) -> anyhow::Result<Vec<String>> {
    let Some(ann) = ann else {
        return Ok(Vec::new());
    };
    let name = match (ann.get(ANN_CONTAINERD_NAME), ann.get(ANN_REF_NAME)) {
        (Some(n), _) => n,
        // A ref.name that is only a tag ("latest") names no image.
        (None, Some(r)) if r.contains('/') || r.contains(':') || r.contains('@') => r,
        _ => return Ok(Vec::new()),
    };
    Ok(vec![normalize(name).map_err(|e| anyhow!(e))?])
}

fn resolve_oci(archive: &mut Archive) -> anyhow::Result<Vec<ResolvedImage>> {
    let bytes = archive.get("index.json")?;
    let index: ImageIndex = serde_json::from_slice(&bytes).context("parsing index.json")?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let names = names_from_annotations(desc.annotations().as_ref())?;
        let digest = parse_digest(desc.digest().as_ref())?;
        match resolve_descriptor(archive, &digest, desc.size(), 0)? {
            Some(mut img) => {
                img.names = names;
                out.push(img);
            }
            None => {
                tracing::warn!(digest = %digest, "no linux/{} image under this index entry", host_arch())
            }
        }
    }
    Ok(out)
}

fn resolve_descriptor(
    archive: &mut Archive,
    digest: &Digest,
    size: u64,
    depth: usize,
) -> anyhow::Result<Option<ResolvedImage>> {
    if depth > 4 {
        bail!("image indexes nested too deeply");
    }
    let bytes = archive.blob(digest, Some(size))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {digest}"))?;
    if value.get("manifests").is_some() {
        let index: ImageIndex =
            serde_json::from_slice(&bytes).with_context(|| format!("parsing index {digest}"))?;
        let Some(d) = pick_platform(&index) else {
            return Ok(None);
        };
        let child = parse_digest(d.digest().as_ref())?;
        return resolve_descriptor(archive, &child, d.size(), depth + 1);
    }
    if value.get("layers").is_none() || value.get("config").is_none() {
        tracing::warn!(digest = %digest, "skipping a blob that is not an image manifest");
        return Ok(None);
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing manifest {digest}"))?;
    let media_type = manifest
        .media_type()
        .as_ref()
        .map_or_else(|| OCI_MANIFEST.to_string(), |m| m.to_string());
    let config_digest = parse_digest(manifest.config().digest().as_ref())?;
    let config_bytes = archive.blob(&config_digest, Some(manifest.config().size()))?;
    let (diff_ids, created) = parse_config(&config_bytes, &config_digest)?;
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "manifest {digest} has {} layers but its config {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    for l in manifest.layers() {
        let d = parse_digest(l.digest().as_ref())?;
        layers.push(LayerSource {
            archive_path: format!("blobs/sha256/{}", d.hex()),
            digest: Some(d),
            size: Some(l.size()),
            media_type: Some(l.media_type().to_string()),
        });
    }
    Ok(Some(ResolvedImage {
        names: Vec::new(),
        manifest: Some((bytes, media_type)),
        config_bytes,
        config_digest,
        created,
        diff_ids,
        layers,
    }))
}

pub(super) fn parse_config(
    bytes: &[u8],
    digest: &Digest,
) -> anyhow::Result<(Vec<Digest>, Option<String>)> {
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).with_context(|| format!("parsing config {digest}"))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| parse_digest(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((diff_ids, config.created().clone()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn hex_in_path(p: &str) -> Option<Digest> {
    let base = p.rsplit('/').next().unwrap_or(p);
    Digest::from_hex(base.strip_suffix(".json").unwrap_or(base))
}

fn resolve_docker(archive: &mut Archive) -> anyhow::Result<Vec<ResolvedImage>> {
    let bytes = archive.get("manifest.json")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).context("parsing manifest.json")?;
    let mut out = Vec::new();
    for e in entries {
        let config_path = entry_key(Path::new(&e.config));
        let config_bytes = archive.get(&config_path)?;
        let config_digest = Digest::of(&config_bytes);
        if let Some(named) = hex_in_path(&config_path) {
            if named != config_digest {
                bail!("config {config_path} does not match its digest (got {config_digest})");
            }
        }
        let (diff_ids, created) = parse_config(&config_bytes, &config_digest)?;
        if diff_ids.len() != e.layers.len() {
            bail!(
                "manifest.json lists {} layers but config {config_digest} has {} diff_ids",
                e.layers.len(),
                diff_ids.len()
            );
        }
        let layers = e
            .layers
            .iter()
            .map(|l| {
                let key = entry_key(Path::new(l));
                // Newer docker: blobs/sha256/<hex> names the digest.
                let digest = key
                    .starts_with("blobs/sha256/")
                    .then(|| hex_in_path(&key))
                    .flatten();
                LayerSource {
                    archive_path: key,
                    digest,
                    size: None,
                    media_type: None,
                }
            })
            .collect();
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize(t).map_err(|e| anyhow!(e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(ResolvedImage {
            names,
            manifest: None,
            config_bytes,
            config_digest,
            created,
            diff_ids,
            layers,
        });
    }
    Ok(out)
}

fn synthesise_manifest(img: &ResolvedImage, layers: &[LayerRecord]) -> anyhow::Result<Vec<u8>> {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": img.config_digest,
            "size": img.config_bytes.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type,
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    Ok(serde_json::to_vec(&m)?)
}

// ---------------------------------------------------------------------------
// Streaming layers into staging.

/// Read every layer blob the images need, in one pass over the archive.
/// Returns archive path → (blob digest, size, compression).
fn read_layers(
    store: &Store,
    staging: &Staging,
    archive: &Archive,
    images: &[ResolvedImage],
    progress: &mut dyn FnMut(&ImportEvent),
) -> anyhow::Result<HashMap<String, (Digest, u64, Compression)>> {
    // real entry → (layer source of the first image needing it, expected diff_id)
    let mut wanted: HashMap<String, (&LayerSource, &Digest)> = HashMap::new();
    let mut aliases: Vec<(String, String)> = Vec::new();
    for img in images {
        for (l, diff_id) in img.layers.iter().zip(&img.diff_ids) {
            let real = archive.real(&l.archive_path);
            aliases.push((l.archive_path.clone(), real.clone()));
            wanted.entry(real).or_insert((l, diff_id));
        }
    }
    let mut done: HashMap<String, (Digest, u64, Compression)> = HashMap::new();
    let mut tar = open_archive(&archive.path)?;
    let ctx = || format!("reading {}", archive.path.display());
    for entry in tar.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let key = entry_key(&entry.path().with_context(ctx)?);
        let Some((src, diff_id)) = wanted.get(&key) else {
            continue;
        };
        if done.contains_key(&key) {
            continue;
        }
        let (digest, size, comp, existed) = copy_blob(staging, store, &mut entry, src, diff_id)
            .with_context(|| format!("layer {key}"))?;
        tracing::info!(layer = %digest, bytes = size, existed, "layer");
        progress(&ImportEvent::Layer {
            digest: digest.clone(),
            bytes: size,
            existed,
        });
        done.insert(key, (digest, size, comp));
    }
    let mut out = HashMap::new();
    for (alias, real) in aliases {
        let v = done
            .get(&real)
            .cloned()
            .ok_or_else(|| anyhow!("the archive has no layer {alias} (truncated?)"))?;
        out.insert(alias, v);
    }
    Ok(out)
}

/// Stream one blob from the archive into staging, checking it. Returns its
/// digest, size, compression and whether the store had it already (then it
/// is still read and checked, but not kept).
fn copy_blob(
    staging: &Staging,
    store: &Store,
    reader: &mut dyn Read,
    src: &LayerSource,
    diff_id: &Digest,
) -> anyhow::Result<(Digest, u64, Compression, bool)> {
    let tmp = staging.partial_path();
    let mut magic = [0u8; 4];
    let known = src.digest.as_ref().is_some_and(|d| store.has_blob(d));
    let (digest, size) = if known {
        let mut r = HashingReader::new(reader);
        read_up_to(&mut r, &mut magic)?;
        r.finish()?
    } else {
        let file = File::create(&tmp)?;
        let mut w = HashingWriter::new(io::BufWriter::new(file));
        let mut r = BufReader::new(reader);
        let n = read_up_to(&mut r, &mut magic)?;
        w.write_all(&magic[..n])?;
        io::copy(&mut r, &mut w)?;
        let (buf, d, size) = w.finish();
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        (d, size)
    };
    let comp = Compression::sniff(&magic);
    let check = (|| {
        if let Some(s) = src.size {
            if s != size {
                bail!("blob is {size} bytes, its descriptor says {s} (truncated?)");
            }
        }
        if let Some(want) = &src.digest {
            if want != &digest {
                bail!("blob {want} does not match its digest (got {digest})");
            }
        }
        if src.digest.is_none() && comp == Compression::None && &digest != diff_id {
            // Docker archive, uncompressed layer: its digest is the diff_id.
            bail!("layer does not match its diff_id {diff_id} (got {digest})");
        }
        Ok(())
    })();
    if let Err(e) = check {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if known {
        return Ok((digest, size, comp, true));
    }
    let existed = staging.keep_partial(store, &tmp, &digest)?;
    Ok((digest, size, comp, existed))
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = r.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    /// An OCI archive: index → nested index (other arch + host arch) →
    /// manifest → config + one gzip layer. `tamper` may change the layer
    /// blob after its digest is taken.
    fn oci_archive(tamper: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let layer = tar_of(&[("hello", b"world")]);
        let diff_id = Digest::of(&layer);
        let mut layer_gz = gzip(&layer);
        let layer_digest = Digest::of(&layer_gz);
        let layer_size = layer_gz.len();
        tamper(&mut layer_gz);
        let config = serde_json::to_vec(&json!({
            "architecture": host_arch(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("json");
        let config_d = Digest::of(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer_size}],
        }))
        .expect("json");
        let manifest_d = Digest::of(&manifest);
        let other = Digest::of(b"missing");
        let nested = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": other, "size": 7,
                 "platform": {"architecture": "mips64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": manifest_d, "size": manifest.len(),
                 "platform": {"architecture": host_arch(), "os": "linux"}},
            ],
        }))
        .expect("json");
        let nested_d = Digest::of(&nested);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": nested_d, "size": nested.len(),
                "annotations": {ANN_REF_NAME: "busybox"}}],
        }))
        .expect("json");
        let paths: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index),
            (format!("blobs/sha256/{}", nested_d.hex()), nested),
            (format!("blobs/sha256/{}", manifest_d.hex()), manifest),
            (format!("blobs/sha256/{}", config_d.hex()), config),
            (format!("blobs/sha256/{}", layer_digest.hex()), layer_gz),
        ];
        let refs: Vec<(&str, &[u8])> = paths
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        tar_of(&refs)
    }

    type Tamper = Box<dyn Fn(&mut Vec<u8>)>;

    fn listing(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("read_dir").flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
                out.push(e.path());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn imports_nested_index_from_zstd_archive() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("data")).expect("store");
        let archive = tmp.path().join("img.tar.zst");
        let zst = zstd::encode_all(&oci_archive(|_| {})[..], 3).expect("zstd");
        fs::write(&archive, zst).expect("write");
        let mut events = 0;
        let imported = import_archive(&store, &archive, &mut |_| events += 1).expect("import");
        assert_eq!(imported.len(), 1);
        // A bare ref.name is a tag, not a name: the image is named by digest.
        assert_eq!(imported[0].name, imported[0].digest.to_string());
        assert_eq!(events, 2);
        let rec = store.get(&imported[0].name).expect("get").expect("record");
        let fs_dir = &store.snapshot_dirs(&rec)[0];
        assert_eq!(fs::read(fs_dir.join("hello")).expect("hello"), b"world");
        // Importing again reuses everything.
        let again = import_archive(&store, &archive, &mut |_| {}).expect("import again");
        assert_eq!(again[0].replaced, None);
    }

    #[test]
    fn digest_mismatch_leaves_no_partial_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("data")).expect("store");
        let before = listing(store.agent_dir());
        let cases: [(&str, Tamper, &str); 2] = [
            (
                "flip",
                Box::new(|b: &mut Vec<u8>| {
                    let i = b.len() / 2;
                    b[i] ^= 1;
                }),
                "does not match its digest",
            ),
            (
                "truncate",
                Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 3)),
                "truncated",
            ),
        ];
        for (what, tamper, msg) in cases {
            let archive = tmp.path().join(format!("{what}.tar.gz"));
            fs::write(&archive, gzip(&oci_archive(tamper))).expect("write");
            let err = import_archive(&store, &archive, &mut |_| {}).expect_err(what);
            assert!(format!("{err:#}").contains(msg), "{what}: {err:#}");
            assert_eq!(listing(store.agent_dir()), before, "{what}: partial state");
        }
        // A truncated archive (cut inside the layer) fails too.
        let whole = oci_archive(|_| {});
        let archive = tmp.path().join("cut.tar");
        fs::write(&archive, &whole[..whole.len() - 1500]).expect("write");
        assert!(import_archive(&store, &archive, &mut |_| {}).is_err());
        assert_eq!(listing(store.agent_dir()), before);
    }

    #[test]
    fn airgap_dir_imports_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("data")).expect("store");
        let dir = store.airgap_dir();
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("a.tar"), oci_archive(|_| {})).expect("write");
        fs::write(dir.join("notes.txt"), b"not an image").expect("write");
        assert_eq!(import_airgap_dir(&store, &dir).expect("airgap").len(), 1);
        assert_eq!(import_airgap_dir(&store, &dir).expect("airgap").len(), 0);
    }
}
