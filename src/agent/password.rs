//! The agent's node password (k3s keeps it in /etc/rancher/node/password):
//! made once, kept under the data dir, sent with every join. The server
//! refuses another machine that joins under this node's name (see
//! src/join/password.rs).

use std::path::Path;

use anyhow::Context;

use crate::identity::fsutil::{read_optional, write_atomic};

/// The node password under `agent_dir`, made if there is none (`kone
/// server`'s own node keeps one too, as k3s's server does).
pub fn ensure(agent_dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(agent_dir)
        .with_context(|| format!("creating {}", agent_dir.display()))?;
    let path = agent_dir.join("node-password");
    if let Some(kept) = read_optional(&path)? {
        let kept = kept.trim();
        if !kept.is_empty() {
            return Ok(kept.to_string());
        }
    }
    let password = hex::encode(rand::random::<[u8; 16]>());
    write_atomic(&path, format!("{password}\n").as_bytes(), 0o600)?;
    tracing::info!(path = %path.display(), "created the node password");
    Ok(password)
}
