//! watch: a stream of JSON events, one per line.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::stream::StreamExt;
use http::{header, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::read::{list_objects, Filter};
use super::Request;
use crate::api::registry::ResourceInfo;
use crate::apiserver::negotiate::{self, Output};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::table::{self, Include};
use crate::apiserver::{custom, object};
use crate::datastore::{Event, EventKind, StoreError};

/// Watches without timeoutSeconds end after this long, like upstream's
/// --min-request-timeout, so clients re-establish them now and then.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// How one event is written for this watcher.
struct Encoder {
    info: Arc<ResourceInfo>,
    output: Output,
    include: Include,
}

impl Encoder {
    fn event(&self, kind: &str, obj: Value) -> Bytes {
        let object = match self.output {
            Output::Json => obj,
            Output::Table(v) => table::table_for(
                &self.info,
                std::slice::from_ref(&obj),
                json!({ "resourceVersion": object::meta_str(&obj, "resourceVersion").unwrap_or("") }),
                v,
                self.include,
            ),
            Output::Metadata(v) => table::partial(&obj, v),
        };
        line(&json!({ "type": kind, "object": object }))
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rev.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({ "kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta });
        line(&json!({ "type": "BOOKMARK", "object": object }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn error_event(e: &ApiError) -> Bytes {
    line(&json!({ "type": "ERROR", "object": e.to_status() }))
}

/// Map one store event to the watch event this watcher sees, if any.
/// Objects moving out of the selection are DELETED, moving in are ADDED.
fn translate(info: &ResourceInfo, filter: &Filter, ev: &Event) -> Option<(&'static str, Value)> {
    let decode = |kv: &crate::datastore::KeyValue, rev: i64| {
        let mut obj = object::from_stored(&kv.value, rev).ok()?;
        custom::to_served(info, &mut obj);
        Some(obj)
    };
    // Decoding the previous value only tells whether it was selected: a
    // watch without selectors selected it anyway.
    let prev_matches = |prev: &crate::datastore::KeyValue| {
        filter.selects_all() || decode(prev, prev.mod_revision).is_some_and(|p| filter.matches(&p))
    };
    match ev.kind {
        EventKind::Put => {
            let obj = decode(&ev.kv, ev.kv.mod_revision)?;
            match (
                filter.matches(&obj),
                ev.prev.as_ref().is_some_and(prev_matches),
            ) {
                (true, true) => Some(("MODIFIED", obj)),
                (true, false) => Some(("ADDED", obj)),
                (false, true) => Some(("DELETED", obj)),
                (false, false) => None,
            }
        }
        EventKind::Delete => {
            let obj = decode(&ev.kv, ev.kv.mod_revision)?;
            filter.matches(&obj).then_some(("DELETED", obj))
        }
    }
}

pub async fn watch(req: Request<'_>) -> ApiResult<Response> {
    let info = &*req.target.info;
    let filter = Filter::from_query(&req.query, info)?;
    let encoder = Encoder {
        info: req.target.info.clone(),
        output: negotiate::output(&req.headers)?,
        include: table::Include::parse(req.query.get("includeObject")),
    };
    let bookmarks = req.query.flag("allowWatchBookmarks");
    let send_initial = req.query.flag("sendInitialEvents");
    let timeout = req
        .query
        .timeout_seconds()
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let prefix = info.list_prefix(req.target.namespace.as_deref());

    // Where the stream starts: an explicit revision resumes after it; none
    // (or "0") starts from the current state, sent as ADDED events first.
    let rv = req.query.resource_version().map(|s| s.to_string());
    let explicit = rv
        .as_deref()
        .map(|s| {
            object::parse_rv(s)
                .ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))
        })
        .transpose()?
        .filter(|r| *r > 0);
    let (initial, start_rev) = match explicit {
        Some(r) if !send_initial => (Vec::new(), r),
        _ => {
            let mut list_query = req.query.clone();
            list_query = strip_for_list(list_query);
            let list_req = Request {
                state: req.state,
                user: req.user,
                target: req.target.clone(),
                query: list_query,
                headers: req.headers.clone(),
            };
            let (items, _, rev) = list_objects(&list_req).await?;
            (items, rev)
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let first: Vec<Bytes> = initial
        .into_iter()
        .map(|o| encoder.event("ADDED", o))
        .collect();
    let store_rx = req.state.store.watch(&prefix, start_rev);
    let watches = req.state.metrics.watches.clone();
    let interval = req.state.bookmark_interval;

    tokio::spawn(async move {
        watches.inc();
        let _guard = scopeguard(move || {
            watches.dec();
        });
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(encoder.bookmark(start_rev, true)).await.is_err() {
            return;
        }
        let mut store_rx = match store_rx {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(error_event(&ApiError::from(e))).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        // The newest revision this watcher has seen every event up to.
        let mut seen = start_rev;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(encoder.bookmark(seen, false)).await.is_err() {
                        return;
                    }
                }
                ev = store_rx.recv() => match ev {
                    Some(Ok(ev)) => {
                        seen = ev.kv.mod_revision;
                        if let Some((kind, obj)) = translate(&encoder.info, &filter, &ev) {
                            if tx.send(encoder.event(kind, obj)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(StoreError::Compacted { requested, compacted })) => {
                        let e = ApiError::from(StoreError::Compacted { requested, compacted });
                        let _ = tx.send(error_event(&e)).await;
                        return;
                    }
                    // Too slow or shutting down: end the stream cleanly; the
                    // client re-watches from its last revision.
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "watch ended by the store");
                        return;
                    }
                    None => return,
                },
                _ = tx.closed() => return,
            }
        }
    });

    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The list that seeds a watch reads the newest state, whole.
fn strip_for_list(q: crate::apiserver::query::Query) -> crate::apiserver::query::Query {
    q.without(&[
        "resourceVersion",
        "resourceVersionMatch",
        "limit",
        "continue",
        "watch",
    ])
}

/// Run a closure when dropped (the watch gauge must fall on every exit).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
