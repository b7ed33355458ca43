//! SPDY/3.1, the multiplexing Kubernetes' SPDY clients speak after an
//! `Upgrade: SPDY/3.1` (kubectl up to 1.29, and inside the WebSocket tunnel
//! of port-forward since 1.30). No crate offers it; it is small.

pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod session;

pub use headers::Headers;
pub use session::{Session, Stream, StreamWriter};
