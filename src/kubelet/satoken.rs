//! serviceAccountToken projections: the kubelet asks the API server for a
//! token bound to the pod (TokenRequest) and keeps it until 80% of its
//! lifetime has passed, as upstream's token manager does.

use std::path::Path;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::{Api, PostParams};

use crate::identity::satoken::unverified_lifetime;

/// Upstream's default when the projection gives no expirationSeconds.
const DEFAULT_EXPIRATION: i64 = 3600;

/// The token for `src`: the one already in the volume at `dir` while it is
/// fresh, else a new one from the API.
pub async fn token(
    client: &kube::Client,
    pod: &Pod,
    ns: &str,
    src: &ServiceAccountTokenProjection,
    dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    if let Ok(held) = std::fs::read_to_string(dir.join(&src.path)) {
        if is_fresh(&held, chrono::Utc::now().timestamp()) {
            return Ok(held.into_bytes());
        }
    }
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: src.audience.iter().cloned().collect(),
            expiration_seconds: Some(src.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let issued = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .map_err(|e| anyhow::anyhow!("requesting a token for service account {sa:?}: {e}"))?;
    let token = issued
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow::anyhow!("the API server returned no token for {sa:?}"))?;
    Ok(token.into_bytes())
}

/// Whether a held token has more than a fifth of its lifetime left.
fn is_fresh(token: &str, now: i64) -> bool {
    unverified_lifetime(token.trim()).is_some_and(|(iat, exp)| now < iat + (exp - iat) * 4 / 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token_with(iat: i64, exp: i64) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = serde_json::json!({"iat": iat, "exp": exp}).to_string();
        format!("h.{}.s", b.encode(payload))
    }

    #[test]
    fn renews_after_eighty_percent() {
        let t = token_with(1000, 2000);
        assert!(is_fresh(&t, 1500));
        assert!(is_fresh(&t, 1799));
        assert!(!is_fresh(&t, 1800));
        assert!(!is_fresh("garbage", 0));
    }
}
