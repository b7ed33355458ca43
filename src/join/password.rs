//! Node passwords, as k3s checks them: every agent keeps a random password
//! of its own and sends it when it joins. The first join of a node name
//! stores a salted hash of it in the Secret
//! `kube-system/<node>.node-password.kone`; a later join under that name
//! with another password is refused, so a second machine cannot take over
//! a node's name (and its certificates) by knowing the join token alone.
//! The node-password controller deletes the Secret with its Node, which
//! frees the name for a rebuilt machine.

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

pub const NAMESPACE: &str = "kube-system";
pub const SECRET_TYPE: &str = "kone.io/node-password";
const HASH_KEY: &str = "hash";

pub fn secret_name(node: &str) -> String {
    format!("{node}.node-password.kone")
}

/// Whether `password` may join as `node`: true on the first join (the
/// hash is stored then) and when it matches the stored hash.
pub async fn admit(client: &kube::Client, node: &str, password: &str) -> anyhow::Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let name = secret_name(node);
    // Two first joins may race; the loser reads the winner's hash.
    for _ in 0..2 {
        if let Some(secret) = api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading {NAMESPACE}/{name}"))?
        {
            return Ok(stored_hash(&secret).is_some_and(|h| matches(h, password)));
        }
        match api
            .create(&PostParams::default(), &new_secret(node, password))
            .await
        {
            Ok(_) => {
                tracing::info!(node, secret = %name, "stored the node's password hash");
                return Ok(true);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {NAMESPACE}/{name}")),
        }
    }
    bail!("{NAMESPACE}/{name} keeps changing")
}

/// [`admit`] as an error that says how to free the name when refused.
pub async fn claim(client: &kube::Client, node: &str, password: &str) -> anyhow::Result<()> {
    if admit(client, node, password).await? {
        Ok(())
    } else {
        bail!("{}", name_taken(node))
    }
}

/// What a second machine under a taken name is told, and how to fix it.
pub fn name_taken(node: &str) -> String {
    format!(
        "node name {node:?} is already taken by another node (its node password differs): \
         start this node with another --node-name, or, if the old node is gone for good, \
         delete it (kubectl delete node {node}) or its password secret \
         ({NAMESPACE}/{})",
        secret_name(node)
    )
}

fn stored_hash(secret: &Secret) -> Option<&str> {
    let bytes = secret.data.as_ref()?.get(HASH_KEY)?;
    std::str::from_utf8(&bytes.0).ok()
}

fn new_secret(node: &str, password: &str) -> Secret {
    let salt: [u8; 16] = rand::random();
    let mut secret = Secret {
        type_: Some(SECRET_TYPE.into()),
        ..Default::default()
    };
    secret.metadata.name = Some(secret_name(node));
    secret.metadata.namespace = Some(NAMESPACE.into());
    secret.data = Some(
        [(
            HASH_KEY.to_string(),
            ByteString(hash(&salt, password).into_bytes()),
        )]
        .into(),
    );
    secret
}

/// `sha256:<salt>:<digest>`, hex. The passwords agents make are 128 random
/// bits, out of reach of guessing, so a slow hash would buy nothing; the
/// salt keeps equal passwords from showing as equal hashes.
fn hash(salt: &[u8], password: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(password.as_bytes())
        .finalize();
    format!("sha256:{}:{}", hex::encode(salt), hex::encode(digest))
}

fn matches(stored: &str, password: &str) -> bool {
    let mut parts = stored.split(':');
    match (parts.next(), parts.next().map(hex::decode), parts.next()) {
        (Some("sha256"), Some(Ok(salt)), Some(_)) => hash(&salt, password) == stored,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_only_its_password() {
        let h = hash(b"0123456789abcdef", "right");
        assert!(matches(&h, "right"));
        assert!(!matches(&h, "wrong"));
        assert_ne!(h, hash(b"fedcba9876543210", "right"));
        assert!(!matches("right", "right"));
        assert!(!matches("sha256:zz:00", "right"));
    }
}
