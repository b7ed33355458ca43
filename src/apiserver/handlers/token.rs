//! serviceaccounts/<name>/token: the TokenRequest API
//! (authentication.k8s.io/v1), issuing a signed, audience-scoped,
//! expiring token optionally bound to a Pod, Secret or Node.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::{json, read, Request};
use crate::apiserver::admission::field_error::FieldError;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::{body, object, stored};
use crate::identity::satoken::{self, BoundRef, TokenSpec};

/// Upstream's bounds on expirationSeconds, and its default.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

pub async fn create(req: Request<'_>, body: Body) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let ns = req.target.namespace.clone().unwrap_or_default();
    let sa = read::fetch(&req, &name).await?;
    let bytes = body::read(body).await?;
    let mut tr = body::decode(&req.headers, &bytes)?;
    if !tr.is_object() || !(tr["spec"].is_object() || tr["spec"].is_null()) {
        return Err(ApiError::bad_request(
            "the body must be a TokenRequest object",
        ));
    }
    if tr["kind"] != "TokenRequest" && !tr["kind"].is_null() {
        return Err(ApiError::bad_request(format!(
            "the body must be a TokenRequest, not a {}",
            tr["kind"].as_str().unwrap_or("")
        )));
    }
    let spec = tr["spec"].clone();
    let expiration = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    let too = if expiration < MIN_EXPIRATION {
        Some("may not specify a duration less than 10 minutes")
    } else if expiration > MAX_EXPIRATION {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(why) = too {
        let e = FieldError::invalid("spec.expirationSeconds", &json!(expiration), why);
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            &[e],
        ));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let mut token_spec = TokenSpec {
        namespace: &ns,
        service_account: BoundRef {
            name: name.clone(),
            uid: object::uid(&sa).to_string(),
        },
        audiences,
        expiration_seconds: expiration,
        pod: None,
        secret: None,
        node: None,
    };
    let bound_ref = spec.get("boundObjectRef").filter(|b| !b.is_null());
    if let Some(b) = bound_ref {
        let (plural, slot) = match b["kind"].as_str().unwrap_or("") {
            "Pod" => ("pods", &mut token_spec.pod),
            "Secret" => ("secrets", &mut token_spec.secret),
            "Node" => ("nodes", &mut token_spec.node),
            other => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for object of type /v1, Kind={other}"
                )))
            }
        };
        *slot = Some(bound_object(&req, plural, &ns, b).await?);
    }
    let claims = satoken::new_claims(token_spec);
    let token = req
        .state
        .sa_tokens
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    tr["apiVersion"] = json!("authentication.k8s.io/v1");
    tr["kind"] = json!("TokenRequest");
    tr["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": Value::Null});
    tr["spec"]["audiences"] = json!(claims.aud);
    tr["spec"]["expirationSeconds"] = json!(expiration);
    tr["spec"]["boundObjectRef"] = bound_ref.cloned().unwrap_or(Value::Null);
    tr["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(json(StatusCode::CREATED, &tr))
}

/// The object a token is to be bound to: it must exist, and match the uid
/// if the reference gives one.
async fn bound_object(req: &Request<'_>, plural: &str, ns: &str, r: &Value) -> ApiResult<BoundRef> {
    let name = r["name"].as_str().unwrap_or("");
    let namespaced = plural != "nodes";
    let obj =
        stored::core_object(&*req.state.store, plural, namespaced.then_some(ns), name).await?;
    let Some(obj) = obj else {
        let info = stored::info("", "v1", plural)?;
        return Err(ApiError::not_found(&info, name));
    };
    let uid = object::uid(&obj).to_string();
    match r["uid"].as_str() {
        Some(want) if !want.is_empty() && want != uid => Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated",
                r["kind"].as_str().unwrap_or("")
            ),
        )),
        _ => Ok(BoundRef {
            name: name.to_string(),
            uid,
        }),
    }
}
