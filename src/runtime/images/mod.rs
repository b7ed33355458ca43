//! Images: a content-addressed store under `<data-dir>/agent/`, importing
//! docker-save and OCI image-layout archives or pulling from registries, and
//! unpacking layers into snapshots that overlayfs can stack. Imports and
//! pulls share one installation path ([`staging::Staging`]).
//!
//! On-disk layout (all under `<data-dir>/agent/`):
//!
//! ```text
//! images/                          airgap tarballs to auto-import (k3s folder; never written)
//! content/blobs/sha256/<hex>       blobs: manifests, configs, layers (as compressed in the archive)
//! content/images/<escaped>.json    one image record per name (written atomically, last)
//! content/tmp/                     staging of imports and pulls in progress; removed on failure
//! content/airgap.json              airgap tarballs already imported (size, mtime, digests)
//! content/lock                     flock: imports, removals and GC are serialised
//! snapshots/<chainid-hex>/fs       one unpacked layer (only that layer's content)
//! snapshots/<chainid-hex>/info.json   {chain_id, parent, diff_id}
//! ```
//!
//! Whiteouts are stored the overlayfs way (character device 0/0, and the
//! `trusted.overlay.opaque=y` xattr on opaque directories), so a container's
//! root is an overlay mount whose lowerdirs are the snapshots' `fs` folders,
//! top layer first (see [`Store::snapshot_dirs`]).

pub mod cli;
pub mod digest;
pub mod import;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod staging;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use import::{import_airgap_dir, import_archive, ImportEvent, Imported};
pub use pull::{PullEvent, Puller};
pub use reference::normalize;
pub use registries::{Credentials, RegistryConfig};
pub use store::{GcReport, ImageRecord, LayerRecord, Store};
