//! The container runtime: images now (import, content store, unpacking into
//! overlay-ready snapshots); containers (libcontainer) come later.

pub mod images;
