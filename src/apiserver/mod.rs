//! The API server: the one entrance to cluster state.
pub mod admission;
pub mod listener;
