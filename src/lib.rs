//! kone: Kubernetes in one binary.

pub mod api;
pub mod apiserver;
pub mod datastore;
pub mod identity;
