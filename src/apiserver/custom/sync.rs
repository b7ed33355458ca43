//! Keeps the registry's custom kinds in step with the stored CRDs: loaded
//! before the server answers (so a restart serves them at once), then
//! followed through a datastore watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::api::crd::served_kinds;
use crate::api::registry;
use crate::apiserver::object;
use crate::datastore::{Backend, EventKind, StoreResult};

/// Where CRDs are stored.
pub const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// The stored CRDs by key, and the revision they were read at.
pub struct Crds {
    by_key: BTreeMap<String, Value>,
    revision: i64,
}

impl Crds {
    fn publish(&self) {
        registry::set_custom(self.by_key.values().flat_map(served_kinds).collect());
        crate::apiserver::openapi::invalidate();
    }
}

/// Read every stored CRD and serve what they define.
pub async fn load(store: &dyn Backend) -> StoreResult<Crds> {
    let list = store.list(PREFIX, None, 0, None).await?;
    let mut by_key = BTreeMap::new();
    for kv in list.items {
        match object::from_stored(&kv.value, kv.mod_revision) {
            Ok(crd) => {
                by_key.insert(kv.key, crd);
            }
            Err(e) => tracing::warn!(key = %kv.key, error = %e, "skipping undecodable CRD"),
        }
    }
    let crds = Crds {
        by_key,
        revision: list.revision,
    };
    crds.publish();
    Ok(crds)
}

/// Follow CRD changes for as long as the server runs. A watch that ends
/// (too slow, compacted) is replaced by a fresh load.
pub async fn run(store: Arc<dyn Backend>, mut crds: Crds) {
    loop {
        match follow(&*store, &mut crds).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "CRD watch ended; reloading"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        match load(&*store).await {
            Ok(fresh) => crds = fresh,
            Err(e) => tracing::warn!(error = %e, "reloading CRDs failed"),
        }
    }
}

/// Apply watch events until the store closes the stream (Ok) or fails.
async fn follow(store: &dyn Backend, crds: &mut Crds) -> StoreResult<()> {
    let mut rx = store.watch(PREFIX, crds.revision)?;
    while let Some(ev) = rx.recv().await {
        let ev = ev?;
        crds.revision = ev.kv.mod_revision;
        match ev.kind {
            EventKind::Put => match object::from_stored(&ev.kv.value, ev.kv.mod_revision) {
                Ok(crd) => {
                    crds.by_key.insert(ev.kv.key.clone(), crd);
                }
                Err(e) => tracing::warn!(key = %ev.kv.key, error = %e, "undecodable CRD"),
            },
            EventKind::Delete => {
                crds.by_key.remove(&ev.kv.key);
            }
        }
        crds.publish();
    }
    Ok(())
}
