//! The container runtime: images (import, content store, unpacking into
//! overlay snapshots), containers on youki's libcontainer under a per-pod
//! supervisor process, and the `kone runtime` debugging commands.

pub mod cli;
pub mod containers;
pub mod images;
pub mod logs;
pub mod shim;
