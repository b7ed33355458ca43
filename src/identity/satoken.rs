//! Service account tokens: JWTs signed with the cluster's service-account
//! key (`server/tls/service.key`, ES256), as kube-apiserver's TokenRequest
//! issues them and its service-account authenticator checks them.

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::certs::{new_key, parse_key, unix_now};
use super::fsutil::{read_optional, write_atomic};

/// The issuer and default audience, kube-apiserver's defaults for a cluster
/// domain of cluster.local (k3s sets the same).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The object a token is bound to: it stops working when that object goes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BoundRef {
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: BoundRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<BoundRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<BoundRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<BoundRef>,
}

/// The claims upstream puts in a bound service account token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

impl Claims {
    /// `system:serviceaccount:<ns>:<name>`, the token's user.
    pub fn username(&self) -> String {
        service_account_user(
            &self.kubernetes.namespace,
            &self.kubernetes.serviceaccount.name,
        )
    }
}

pub fn service_account_user(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

/// Signs and verifies service account tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Load `<tls_dir>/service.key`, creating it once: tokens already
    /// handed out stay valid across restarts.
    pub fn load_or_create(tls_dir: &Path) -> anyhow::Result<TokenIssuer> {
        let path = tls_dir.join("service.key");
        let pem = match read_optional(&path)? {
            Some(p) => p,
            None => {
                let pem = new_key()?.serialize_pem();
                write_atomic(&path, pem.as_bytes(), 0o600)?;
                pem
            }
        };
        Self::from_pem(&pem).with_context(|| format!("loading {}", path.display()))
    }

    fn from_pem(pem: &str) -> anyhow::Result<TokenIssuer> {
        let key = parse_key(pem, "service account key")?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())?;
        let public = key.public_key_raw().to_vec();
        // Upstream's kid: a hash of the public key, so verifiers can tell keys apart.
        let key_id = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&public))
        };
        Ok(TokenIssuer {
            encoding,
            decoding: DecodingKey::from_ec_der(&public),
            key_id,
        })
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The claims of a token this issuer signed that is current and meant
    /// for one of `audiences`; None for anything else (other issuers'
    /// tokens, static tokens, garbage), so other authenticators may try.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.validate_nbf = true;
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok()?;
        let c = data.claims;
        (c.sub == c.username()).then_some(c)
    }
}

/// What a TokenRequest asks for.
pub struct TokenSpec<'a> {
    pub namespace: &'a str,
    pub service_account: BoundRef,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// The object the token is bound to, by kind.
    pub pod: Option<BoundRef>,
    pub secret: Option<BoundRef>,
    pub node: Option<BoundRef>,
}

/// The claims of a new token (issued now).
pub fn new_claims(spec: TokenSpec<'_>) -> Claims {
    let now = unix_now();
    let audiences = if spec.audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        spec.audiences
    };
    Claims {
        iss: ISSUER.into(),
        sub: service_account_user(spec.namespace, &spec.service_account.name),
        aud: audiences,
        exp: now + spec.expiration_seconds,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: KubernetesClaims {
            namespace: spec.namespace.into(),
            serviceaccount: spec.service_account,
            pod: spec.pod,
            secret: spec.secret,
            node: spec.node,
        },
    }
}

/// iat and exp of a token, read without checking its signature: the
/// kubelet uses it to decide when the token it holds needs renewing.
pub fn unverified_lifetime(token: &str) -> Option<(i64, i64)> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["iat"].as_i64()?, v["exp"].as_i64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(aud: &[&str], secs: i64) -> TokenSpec<'static> {
        TokenSpec {
            namespace: "ns1",
            service_account: BoundRef {
                name: "builder".into(),
                uid: "u-1".into(),
            },
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            expiration_seconds: secs,
            pod: None,
            secret: None,
            node: None,
        }
    }

    #[test]
    fn signs_and_verifies_with_audiences() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path()).unwrap();
        let token = issuer.sign(&new_claims(spec(&[], 600))).unwrap();
        let c = issuer.verify(&token, &[ISSUER]).expect("valid");
        assert_eq!(c.username(), "system:serviceaccount:ns1:builder");
        assert_eq!(c.exp - c.iat, 600);
        assert_eq!(unverified_lifetime(&token), Some((c.iat, c.exp)));
        // Another audience is refused.
        let other = issuer.sign(&new_claims(spec(&["vault"], 600))).unwrap();
        assert!(issuer.verify(&other, &[ISSUER]).is_none());
        // Expired, tampered or foreign tokens are refused.
        let old = issuer.sign(&new_claims(spec(&[], -10))).unwrap();
        assert!(issuer.verify(&old, &[ISSUER]).is_none());
        let mut bad = token.clone();
        bad.pop();
        assert!(issuer.verify(&bad, &[ISSUER]).is_none());
        let dir2 = tempfile::tempdir().unwrap();
        let stranger = TokenIssuer::load_or_create(dir2.path()).unwrap();
        assert!(stranger.verify(&token, &[ISSUER]).is_none());
        // The key is kept: a restart verifies earlier tokens.
        let again = TokenIssuer::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&token, &[ISSUER]).is_some());
    }
}
