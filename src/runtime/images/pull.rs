//! Pulling images from OCI distribution registries (oci-client): tags and
//! digests, indexes and docker manifest lists (the host's platform is
//! picked), token and basic auth, mirrors from `registries.yaml`.
//!
//! Blobs stream into a staging folder and are checked against their
//! digests and sizes; the image then goes through [`Staging::install`], the
//! path imports take, so a pulled image lands exactly as an imported one and
//! a failed pull leaves nothing behind. Pulls of the same reference (and
//! credentials) in one process share one download.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use super::digest::Digest;
use super::import::{parse_config, parse_digest, pick_platform, ImportEvent, OCI_MANIFEST};
use super::reference::normalize;
use super::registries::{Credentials, Endpoint, RegistryConfig};
use super::staging::Staging;
use super::store::{ImageRecord, LayerRecord, Store};

/// Manifest media types asked for, single-platform and lists.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Manifests and configs are read into memory: at most this big.
const MAX_JSON: u64 = 4 << 20;
/// Layers fetched at once.
const PARALLEL_LAYERS: usize = 3;
/// A progress event at most every this many bytes of a layer.
const PROGRESS_STEP: u64 = 256 << 10;

/// Progress of a pull.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The manifest was found.
    Resolved {
        endpoint: String,
        digest: Digest,
        layers: usize,
        bytes: u64,
    },
    /// Bytes of a layer received so far.
    Fetching {
        digest: Digest,
        bytes: u64,
        total: u64,
    },
    /// A layer blob is checked and staged (or the store had it).
    Fetched {
        digest: Digest,
        bytes: u64,
        existed: bool,
    },
    /// Unpacking, as for imports.
    Unpack(ImportEvent),
}

type SharedPull = Shared<BoxFuture<'static, Result<ImageRecord, Arc<anyhow::Error>>>>;
type Key = (String, Option<Credentials>);

struct InFlight {
    result: SharedPull,
    events: broadcast::Sender<PullEvent>,
}

/// Pulls images into a store. Cheap to clone; clones share in-flight pulls.
#[derive(Clone)]
pub struct Puller {
    store: Store,
    registries: Arc<RegistryConfig>,
    inflight: Arc<Mutex<HashMap<Key, InFlight>>>,
}

impl Puller {
    pub fn new(store: Store, registries: RegistryConfig) -> Puller {
        Puller {
            store,
            registries: Arc::new(registries),
            inflight: Arc::default(),
        }
    }

    /// Pull `reference` and return its record. `auth` (a pod's
    /// imagePullSecret) is for the registry's own endpoint; mirrors use
    /// `registries.yaml`.
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<Credentials>,
    ) -> anyhow::Result<ImageRecord> {
        self.pull_with_progress(reference, auth, |_| {}).await
    }

    /// [`Puller::pull`], calling `on_event` with progress. A caller joining
    /// a pull already running sees the events from then on.
    pub async fn pull_with_progress(
        &self,
        reference: &str,
        auth: Option<Credentials>,
        mut on_event: impl FnMut(&PullEvent),
    ) -> anyhow::Result<ImageRecord> {
        let name = normalize(reference).map_err(|e| anyhow!(e))?;
        let key: Key = (name.clone(), auth.clone());
        let (mut result, mut events) = {
            let mut map = self
                .inflight
                .lock()
                .map_err(|_| anyhow!("pull table poisoned"))?;
            match map.get(&key) {
                Some(f) => {
                    tracing::info!(image = %name, "joining a pull in progress");
                    (f.result.clone(), f.events.subscribe())
                }
                None => {
                    let (tx, rx) = broadcast::channel(256);
                    let this = self.clone();
                    let (k, sender) = (key.clone(), tx.clone());
                    let fut = async move {
                        let res = this.fetch(&k.0, k.1.as_ref(), &sender).await;
                        if let Ok(mut map) = this.inflight.lock() {
                            map.remove(&k);
                        }
                        res.map_err(Arc::new)
                    }
                    .boxed()
                    .shared();
                    // Runs to the end even if every caller goes away, so
                    // joiners and the store never see half a pull.
                    tokio::spawn(fut.clone());
                    map.insert(
                        key,
                        InFlight {
                            result: fut.clone(),
                            events: tx,
                        },
                    );
                    (fut, rx)
                }
            }
        };
        let outcome = loop {
            tokio::select! {
                biased;
                ev = events.recv() => match ev {
                    Ok(ev) => on_event(&ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break (&mut result).await,
                },
                res = &mut result => break res,
            }
        };
        while let Ok(ev) = events.try_recv() {
            on_event(&ev);
        }
        outcome.map_err(|e| anyhow!("{e:#}"))
    }

    async fn fetch(
        &self,
        name: &str,
        auth: Option<&Credentials>,
        events: &broadcast::Sender<PullEvent>,
    ) -> anyhow::Result<ImageRecord> {
        let (registry, repository, tag, digest) = split_name(name)?;
        let endpoints = self.registries.endpoints(registry, repository, auth);
        let mut failures = Vec::new();
        let mut found = None;
        for ep in &endpoints {
            match Source::resolve(ep, tag, digest.as_ref()).await {
                Ok(src) => {
                    found = Some(src);
                    break;
                }
                Err(e) => {
                    let msg = describe(&e);
                    tracing::warn!(image = %name, endpoint = %ep.url(), error = %msg, "pull: endpoint failed");
                    failures.push(format!("{}: {msg}", ep.url()));
                }
            }
        }
        let Some(src) = found else {
            bail!("pulling {name}: {}", failures.join("; "));
        };
        self.fetch_from(name, src, events)
            .await
            .with_context(|| format!("pulling {name}"))
    }

    async fn fetch_from(
        &self,
        name: &str,
        src: Source,
        events: &broadcast::Sender<PullEvent>,
    ) -> anyhow::Result<ImageRecord> {
        let manifest = &src.manifest;
        let total: u64 = manifest.layers().iter().map(|l| l.size()).sum();
        tracing::info!(image = %name, endpoint = %src.endpoint, digest = %src.digest, layers = manifest.layers().len(), bytes = total, "pull: resolved");
        let _ = events.send(PullEvent::Resolved {
            endpoint: src.endpoint.clone(),
            digest: src.digest.clone(),
            layers: manifest.layers().len(),
            bytes: total,
        });
        let staging = Staging::new(&self.store, "pull")?;

        let config_digest = parse_digest(manifest.config().digest().as_ref())?;
        let config_bytes = src
            .small_blob(&config_digest, manifest.config().size())
            .await
            .with_context(|| format!("fetching config {config_digest}"))?;
        let (diff_ids, created) = parse_config(&config_bytes, &config_digest)?;
        if diff_ids.len() != manifest.layers().len() {
            bail!(
                "manifest {} has {} layers but its config {} diff_ids",
                src.digest,
                manifest.layers().len(),
                diff_ids.len()
            );
        }
        staging.put_blob(&self.store, &src.digest, &src.manifest_bytes)?;
        staging.put_blob(&self.store, &config_digest, &config_bytes)?;

        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers().iter().zip(diff_ids) {
            layers.push(LayerRecord {
                digest: parse_digest(l.digest().as_ref())?,
                diff_id,
                size: l.size(),
                media_type: l.media_type().to_string(),
            });
        }
        let fetches: Vec<_> = layers
            .iter()
            .map(|l| src.layer(&self.store, &staging, l, events))
            .collect();
        let mut fetches = futures::stream::iter(fetches).buffer_unordered(PARALLEL_LAYERS);
        while let Some(res) = fetches.next().await {
            res?;
        }
        drop(fetches);

        let rec = ImageRecord {
            name: name.to_string(),
            digest: src.digest.clone(),
            media_type: src.media_type.clone(),
            config_digest,
            size: src.manifest_bytes.len() as u64 + config_bytes.len() as u64 + total,
            layers,
            created,
            imported: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let store = self.store.clone();
        let events = events.clone();
        let installed = rec.clone();
        tokio::task::spawn_blocking(move || {
            let lock = store.lock()?;
            let mut progress = |ev: &ImportEvent| {
                let _ = events.send(PullEvent::Unpack(ev.clone()));
            };
            staging.install(
                &store,
                &lock,
                vec![(installed.clone(), vec![installed.name.clone()])],
                &mut progress,
            )
        })
        .await
        .context("the unpack task failed")??;
        tracing::info!(image = %name, digest = %rec.digest, "pulled image");
        Ok(rec)
    }
}

/// `registry/repo[:tag][@digest]` (normalised) → its parts.
fn split_name(name: &str) -> anyhow::Result<(&str, &str, Option<&str>, Option<Digest>)> {
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(parse_digest(d)?)),
        None => (name, None),
    };
    let (registry, path) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("image name {name:?} has no registry"))?;
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (path, None),
    };
    Ok((registry, repository, tag, digest))
}

/// The endpoint an image manifest was found at, and that manifest.
struct Source {
    client: Client,
    reference: Reference,
    endpoint: String,
    digest: Digest,
    media_type: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
}

impl Source {
    /// Fetch the manifest (following an index to this host's platform).
    async fn resolve(
        ep: &Endpoint,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> anyhow::Result<Source> {
        let client = client_for(ep)?;
        let auth = match &ep.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let reference = match (digest, tag) {
            (Some(d), _) => {
                Reference::with_digest(ep.host.clone(), ep.repository.clone(), d.to_string())
            }
            (None, t) => Reference::with_tag(
                ep.host.clone(),
                ep.repository.clone(),
                t.unwrap_or("latest").to_string(),
            ),
        };
        let (mut bytes, _) = client
            .pull_manifest_raw(&reference, &auth, MANIFEST_TYPES)
            .await?;
        let mut got = Digest::of(&bytes);
        if let Some(want) = digest {
            if &got != want {
                bail!("manifest {want} does not match its digest (got {got})");
            }
        }
        for _ in 0..2 {
            let value = parse_json(&bytes, &got)?;
            if value.get("manifests").is_none() {
                break;
            }
            let index: ImageIndex =
                serde_json::from_slice(&bytes).with_context(|| format!("parsing index {got}"))?;
            let entry = pick_platform(&index).ok_or_else(|| {
                anyhow!(
                    "index {got} has no linux/{} image",
                    super::import::host_arch()
                )
            })?;
            let child = parse_digest(entry.digest().as_ref())?;
            let (child_bytes, _) = client
                .pull_manifest_raw(
                    &reference.clone_with_digest(child.to_string()),
                    &auth,
                    MANIFEST_TYPES,
                )
                .await?;
            got = Digest::of(&child_bytes);
            if got != child {
                bail!("manifest {child} does not match its digest (got {got})");
            }
            bytes = child_bytes;
        }
        let value = parse_json(&bytes, &got)?;
        if value.get("schemaVersion").and_then(|v| v.as_i64()) == Some(1) {
            bail!("manifest {got} is docker schema 1, which is not supported");
        }
        if value.get("layers").is_none() || value.get("config").is_none() {
            bail!("{got} is not an image manifest");
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).with_context(|| format!("parsing manifest {got}"))?;
        let media_type = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        Ok(Source {
            client,
            reference,
            endpoint: ep.url(),
            digest: got,
            media_type,
            manifest_bytes: bytes.to_vec(),
            manifest,
        })
    }

    /// A small blob (the config) in memory, checked.
    async fn small_blob(&self, digest: &Digest, size: u64) -> anyhow::Result<Vec<u8>> {
        if size > MAX_JSON {
            bail!("blob {digest} is too large for a config ({size} bytes)");
        }
        let mut buf = Vec::new();
        self.client
            .pull_blob(&self.reference, digest.as_str(), &mut buf)
            .await
            .map_err(|e| anyhow!(describe_oci(&e)))?;
        check(digest, size, buf.len() as u64, &Digest::of(&buf))?;
        Ok(buf)
    }

    /// Stream a layer blob into staging unless the store has it.
    async fn layer(
        &self,
        store: &Store,
        staging: &Staging,
        layer: &LayerRecord,
        events: &broadcast::Sender<PullEvent>,
    ) -> anyhow::Result<()> {
        let d = &layer.digest;
        if store.has_blob(d) || staging.staged_blob(d).exists() {
            tracing::info!(layer = %d, bytes = layer.size, "pull: layer already present");
            let _ = events.send(PullEvent::Fetched {
                digest: d.clone(),
                bytes: layer.size,
                existed: true,
            });
            return Ok(());
        }
        let partial = staging.partial_path();
        let res = self.stream_layer(layer, &partial, events).await;
        if res.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        res.with_context(|| format!("fetching layer {d}"))?;
        let existed = staging.keep_partial(store, &partial, d)?;
        tracing::info!(layer = %d, bytes = layer.size, "pull: layer fetched");
        let _ = events.send(PullEvent::Fetched {
            digest: d.clone(),
            bytes: layer.size,
            existed,
        });
        Ok(())
    }

    async fn stream_layer(
        &self,
        layer: &LayerRecord,
        partial: &std::path::Path,
        events: &broadcast::Sender<PullEvent>,
    ) -> anyhow::Result<()> {
        let (d, size) = (&layer.digest, layer.size);
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, d.as_str())
            .await
            .map_err(|e| anyhow!(describe_oci(&e)))?;
        let mut file = tokio::fs::File::create(partial).await?;
        let mut hasher = Sha256::new();
        let (mut n, mut shown) = (0u64, 0u64);
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // oci-client's own digest check ends the stream with an
                // error: the size and digest checks below say it plainer.
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            n += chunk.len() as u64;
            if n > size {
                bail!("blob {d} is larger than its descriptor says ({size} bytes)");
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            if n - shown >= PROGRESS_STEP || n == size {
                shown = n;
                tracing::debug!(layer = %d, bytes = n, total = size, "pull: fetching");
                let _ = events.send(PullEvent::Fetching {
                    digest: d.clone(),
                    bytes: n,
                    total: size,
                });
            }
        }
        file.sync_all().await?;
        let got = Digest::from_hex(&hex::encode(hasher.finalize()))
            .ok_or_else(|| anyhow!("hashing blob {d}"))?;
        if n == size && &got != d {
            bail!("blob {d} does not match its digest (got {got})");
        }
        if let Some(e) = failure {
            bail!("connection lost after {n} of {size} bytes: {}", chain(&e));
        }
        check(d, size, n, &got)
    }
}

/// The size and digest of a blob fetched, against its descriptor.
fn check(want: &Digest, size: u64, got_size: u64, got: &Digest) -> anyhow::Result<()> {
    if got_size != size {
        bail!("blob {want} is {got_size} bytes, its descriptor says {size} (truncated?)");
    }
    if got != want {
        bail!("blob {want} does not match its digest (got {got})");
    }
    Ok(())
}

fn parse_json(bytes: &[u8], d: &Digest) -> anyhow::Result<serde_json::Value> {
    if bytes.len() as u64 > MAX_JSON {
        bail!("manifest {d} is too large ({} bytes)", bytes.len());
    }
    serde_json::from_slice(bytes).with_context(|| format!("parsing manifest {d}"))
}

fn client_for(ep: &Endpoint) -> anyhow::Result<Client> {
    crate::identity::install_crypto_provider();
    let config = ClientConfig {
        protocol: if ep.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: ep.insecure_skip_verify,
        extra_root_certificates: ep
            .ca_pem
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("kone/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| anyhow!("{}: {}", ep.url(), describe_oci(&e)))
}

/// One line for a registry error: what went wrong, in words a person can
/// act on (401, 404, connection refused), without URLs or JSON envelopes.
fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<OciDistributionError>() {
        Some(oe) => describe_oci(oe),
        None => format!("{e:#}"),
    }
}

fn describe_oci(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::UnauthorizedError { .. } => {
            "unauthorized (401): wrong or missing credentials".into()
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let msgs: Vec<&str> = envelope.errors.iter().map(|x| x.message.as_str()).collect();
            let unknown = envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            });
            let what = if unknown {
                "not found"
            } else {
                "registry error"
            };
            format!("{what}: {}", msgs.join(", "))
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let what = if *code == 404 {
                "not found"
            } else {
                "registry error"
            };
            format!("{what} (HTTP {code}): {}", message.trim())
        }
        OciDistributionError::RequestError(re) => chain(re),
        other => other.to_string(),
    }
}

/// The innermost cause of a transport error: the useful one
/// ("connection refused", "dns error: …").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            return "connection refused".into();
        }
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split() {
        let d = format!("sha256:{}", "a".repeat(64));
        let name = format!("localhost:5000/a/b:1@{d}");
        let (r, repo, tag, dig) = split_name(&name).expect("split");
        assert_eq!((r, repo, tag), ("localhost:5000", "a/b", Some("1")));
        assert_eq!(dig.map(|d| d.to_string()), Some(d));
        let (r, repo, tag, dig) = split_name("docker.io/library/busybox:latest").expect("split");
        assert_eq!(
            (r, repo, tag, dig),
            ("docker.io", "library/busybox", Some("latest"), None)
        );
    }
}
