//! Join tokens in the k3s format: `K10<ca-sha256>::<user>:<secret>`.
//!
//! The CA hash lets a joining agent pin the server CA before it trusts
//! anything the server says; the secret proves the agent may join.

use std::path::Path;

use anyhow::{bail, Context};

use super::fsutil::{read_optional, write_atomic};

const PREFIX: &str = "K10";
const SERVER_USER: &str = "server";

/// A token taken apart. Short ("legacy") tokens are a bare secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedToken {
    pub ca_hash: Option<String>,
    pub username: Option<String>,
    pub secret: String,
}

/// Split a token into its parts. A string that is not in full form is taken
/// as a bare secret, as k3s does.
pub fn parse_token_parts(s: &str) -> ParsedToken {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix(PREFIX) {
        if let Some((hash, creds)) = rest.split_once("::") {
            let (username, secret) = match creds.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), p.to_string()),
                None => (None, creds.to_string()),
            };
            return ParsedToken {
                ca_hash: Some(hash.to_ascii_lowercase()),
                username,
                secret,
            };
        }
    }
    ParsedToken {
        ca_hash: None,
        username: None,
        secret: s.to_string(),
    }
}

/// (CA hash if the token is in full form, secret).
pub fn parse_token(s: &str) -> (Option<String>, String) {
    let p = parse_token_parts(s);
    (p.ca_hash, p.secret)
}

/// The full server token for a secret and CA hash.
pub fn format_server_token(ca_hash: &str, secret: &str) -> String {
    format!("{PREFIX}{ca_hash}::{SERVER_USER}:{secret}")
}

/// Decide the cluster's server token and store it at `<server_dir>/token`.
///
/// Precedence: `--token` if given, else the stored token, else a new random
/// secret. The stored form is always the full token with the current CA
/// hash, so `cat /var/lib/kone/server/token` gives what agents need.
pub fn ensure_server_token(
    server_dir: &Path,
    requested: Option<&str>,
    ca_hash: &str,
) -> anyhow::Result<String> {
    let path = server_dir.join("token");
    let stored = read_optional(&path)?
        .map(|s| parse_token_parts(&s))
        .filter(|p| !p.secret.is_empty());
    let secret = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(given) => {
            let p = parse_token_parts(given);
            if let Some(hash) = &p.ca_hash {
                if !hash.eq_ignore_ascii_case(ca_hash) {
                    bail!(
                        "--token carries CA hash {hash} but this server's CA hash is {ca_hash}; \
                         pass the bare secret or a token issued for this cluster's CA"
                    );
                }
                if p.username.as_deref().is_some_and(|u| u != SERVER_USER) {
                    bail!(
                        "--token is a '{}' token; a server needs a '{SERVER_USER}' token or a bare secret",
                        p.username.as_deref().unwrap_or_default()
                    );
                }
            }
            if p.secret.is_empty() {
                bail!("--token has an empty secret");
            }
            if let Some(old) = &stored {
                if old.secret != p.secret {
                    tracing::warn!(
                        path = %path.display(),
                        "--token differs from the stored token; agents joined with the old one will be refused"
                    );
                }
            }
            p.secret
        }
        None => match stored {
            Some(old) => old.secret,
            None => hex::encode(rand::random::<[u8; 16]>()),
        },
    };
    let token = format_server_token(ca_hash, &secret);
    std::fs::create_dir_all(server_dir)
        .with_context(|| format!("creating {}", server_dir.display()))?;
    write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HASH: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn parses_full_and_short_tokens() {
        let (h, s) = parse_token(&format!("K10{HASH}::server:s3cret"));
        assert_eq!(h.as_deref(), Some(HASH));
        assert_eq!(s, "s3cret");
        assert_eq!(
            parse_token("justasecret"),
            (None, "justasecret".to_string())
        );
        let p = parse_token_parts(&format!("K10{HASH}::node:abc"));
        assert_eq!(p.username.as_deref(), Some("node"));
        assert_eq!(p.secret, "abc");
    }

    #[test]
    fn generates_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = ensure_server_token(dir.path(), None, HASH).unwrap();
        assert!(t1.starts_with(&format!("K10{HASH}::server:")));
        let (_, secret) = parse_token(&t1);
        assert_eq!(secret.len(), 32);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ensure_server_token(dir.path(), None, HASH).unwrap(), t1);
        // A new CA keeps the secret but updates the hash.
        let other = "bb".repeat(32);
        let t2 = ensure_server_token(dir.path(), None, &other).unwrap();
        assert_eq!(t2, format_server_token(&other, &secret));
    }

    #[test]
    fn requested_token_wins_and_hash_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure_server_token(dir.path(), Some("mysecret"), HASH).unwrap();
        assert_eq!(t, format!("K10{HASH}::server:mysecret"));
        let full = format!("K10{HASH}::server:other");
        assert_eq!(
            ensure_server_token(dir.path(), Some(&full), HASH).unwrap(),
            full
        );
        let wrong = format!("K10{}::server:other", "cc".repeat(32));
        let err = ensure_server_token(dir.path(), Some(&wrong), HASH).unwrap_err();
        assert!(err.to_string().contains("CA hash"), "{err}");
        let node = format!("K10{HASH}::node:x");
        assert!(ensure_server_token(dir.path(), Some(&node), HASH).is_err());
        // The stored token is unchanged by failed attempts.
        let stored = std::fs::read_to_string(dir.path().join("token")).unwrap();
        assert_eq!(stored.trim(), full);
    }
}
