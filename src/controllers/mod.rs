//! Control loops, each a task talking to the API through a kube client.
pub mod crd;
pub mod namespace;
