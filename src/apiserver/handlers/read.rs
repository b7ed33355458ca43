//! get and list.

use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};

use super::{json, Request};
use crate::api::fields::FieldSelector;
use crate::api::labels::LabelSelector;
use crate::api::registry::ResourceInfo;
use crate::apiserver::negotiate::{self, Output};
use crate::apiserver::query::Query;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::table::{self, Include};
use crate::apiserver::{custom, object};
use crate::datastore::KeyValue;

/// The label and field selectors of a list or watch.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(query: &Query, info: &ResourceInfo) -> ApiResult<Filter> {
        Ok(Filter {
            labels: query.label_selector()?,
            fields: query.field_selector(info)?,
        })
    }

    /// No selectors: every object matches.
    pub fn selects_all(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|s| s.matches(object::labels(obj)))
            && self.fields.as_ref().is_none_or(|s| s.matches(obj))
    }
}

/// A stored object as served at the requested version.
pub fn decode(info: &ResourceInfo, kv: &KeyValue) -> ApiResult<Value> {
    let mut obj = object::from_stored(&kv.value, kv.mod_revision)
        .map_err(|e| ApiError::internal(format!("decoding stored {}: {e}", kv.key)))?;
    custom::to_served(info, &mut obj);
    Ok(obj)
}

/// The current object, or 404.
pub async fn fetch(req: &Request<'_>, name: &str) -> ApiResult<Value> {
    fetch_with_rev(req, name).await.map(|(o, _)| o)
}

/// The current object and its mod revision, or 404.
pub async fn fetch_with_rev(req: &Request<'_>, name: &str) -> ApiResult<(Value, i64)> {
    let info = &*req.target.info;
    let key = info.key(req.target.namespace.as_deref(), name);
    match req.state.store.get(&key).await? {
        Some(kv) => Ok((decode(info, &kv)?, kv.mod_revision)),
        None => Err(ApiError::not_found(info, name)),
    }
}

/// Render one object the way the client asked.
pub fn render_one(req: &Request<'_>, code: StatusCode, obj: &Value) -> ApiResult<Response> {
    let body = match negotiate::output(&req.headers)? {
        Output::Json => return Ok(json(code, obj)),
        Output::Table(v) => table::table_for(
            &req.target.info,
            std::slice::from_ref(obj),
            json!({ "resourceVersion": object::meta_str(obj, "resourceVersion").unwrap_or("") }),
            v,
            Include::parse(req.query.get("includeObject")),
        ),
        Output::Metadata(v) => table::partial(obj, v),
    };
    Ok(json(code, &body))
}

pub async fn get(req: Request<'_>) -> ApiResult<Response> {
    let name = req.target.name.clone().unwrap_or_default();
    let obj = fetch(&req, &name).await?;
    render_one(&req, StatusCode::OK, &obj)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, last_key: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key.to_string(),
    };
    let bytes = serde_json::to_vec(&token).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
}

/// The objects a list names, filtered, and the list metadata.
pub async fn list_objects(req: &Request<'_>) -> ApiResult<(Vec<Value>, Value, i64)> {
    let mut items = Vec::new();
    let (meta, rev) = list_each(req, |obj| items.push(obj)).await?;
    Ok((items, meta, rev))
}

/// Like `list_objects`, handing each object to `each` as it is read, so a
/// large list need not be held twice.
pub async fn list_each(req: &Request<'_>, mut each: impl FnMut(Value)) -> ApiResult<(Value, i64)> {
    let info = &*req.target.info;
    let filter = Filter::from_query(&req.query, info)?;
    let limit = req.query.limit()?;
    let prefix = info.list_prefix(req.target.namespace.as_deref());
    let store = &req.state.store;

    let (mut revision, mut start_after) = match req.query.get("continue") {
        Some(token) => {
            let t = decode_continue(token)?;
            if !t.start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid: the key is outside the requested collection",
                ));
            }
            (Some(t.rv), Some(t.start))
        }
        None => (exact_revision(&req.query)?, None),
    };

    let mut taken = 0usize;
    let mut last_key = String::new();
    let mut more = false;
    loop {
        let chunk = store
            .list(&prefix, start_after.as_deref(), limit, revision)
            .await
            .map_err(|e| match e {
                crate::datastore::StoreError::Compacted { .. } if req.query.get("continue").is_some() => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => ApiError::from(other),
            })?;
        revision = Some(chunk.revision);
        let n = chunk.items.len();
        for (i, kv) in chunk.items.into_iter().enumerate() {
            let obj = decode(info, &kv)?;
            last_key = kv.key;
            if filter.matches(&obj) {
                each(obj);
                taken += 1;
                if limit > 0 && taken == limit {
                    more = i + 1 < n || chunk.more;
                    break;
                }
            }
        }
        if more || !chunk.more || n == 0 {
            break;
        }
        start_after = Some(last_key.clone());
    }
    let rev = revision.unwrap_or(0);
    let mut meta = json!({ "resourceVersion": rev.to_string() });
    if more {
        meta["continue"] = json!(encode_continue(rev, &last_key));
    }
    Ok((meta, rev))
}

/// The revision a list must be read at: only `resourceVersionMatch=Exact`
/// pins an old one; otherwise the newest state satisfies every request.
fn exact_revision(query: &Query) -> ApiResult<Option<i64>> {
    let rv = query.resource_version();
    match (query.get("resourceVersionMatch"), rv) {
        (Some("Exact"), Some(rv)) => object::parse_rv(rv)
            .filter(|r| *r > 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?} for resourceVersionMatch=Exact"))),
        (Some("Exact" | "NotOlderThan"), None) => Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some("NotOlderThan") | None, _) => {
            if let Some(rv) = rv {
                object::parse_rv(rv).ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            }
            Ok(None)
        }
        (Some(other), _) => Err(ApiError::bad_request(format!(
            "unsupported resourceVersionMatch {other:?}: supported values are \"Exact\" and \"NotOlderThan\""
        ))),
    }
}

pub async fn list(req: Request<'_>) -> ApiResult<Response> {
    let info = &*req.target.info;
    let output = negotiate::output(&req.headers)?;
    if output != Output::Json {
        let (items, meta, _) = list_objects(&req).await?;
        let body = match output {
            Output::Table(v) => table::table_for(
                &req.target.info,
                &items,
                meta,
                v,
                Include::parse(req.query.get("includeObject")),
            ),
            _ => table::partial_list(&items, meta, output.version()),
        };
        return Ok(json(StatusCode::OK, &body));
    }
    // Items are encoded as they are read: a list of thousands of objects is
    // never held as JSON values all at once.
    let mut items: Vec<u8> = vec![b'['];
    let (meta, _) = list_each(&req, |obj| {
        if items.len() > 1 {
            items.push(b',');
        }
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut items, &obj);
    })
    .await?;
    items.push(b']');
    let head = json!({
        "kind": info.list_kind(),
        "apiVersion": info.api_version(),
        "metadata": meta,
    });
    let mut body = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
    body.pop(); // the closing brace
    body.extend_from_slice(b",\"items\":");
    body.extend_from_slice(&items);
    body.push(b'}');
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}
