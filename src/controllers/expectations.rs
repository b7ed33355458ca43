//! What a controller's last sync created and deleted that its cache has
//! not shown yet (upstream's ControllerExpectations), so the next sync,
//! triggered perhaps by another watch, does not act twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use super::pods;

/// How long a sync waits for the watch before it trusts the cache again.
const TTL: Duration = Duration::from_secs(30);

struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    at: Instant,
}

/// Pending pod creations (by name) and deletions (by uid) per owner uid.
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, Pending>>);

impl Expectations {
    /// Whether the cache shows everything the owner's last sync did.
    pub fn settled(&self, owner_uid: &str, ns: &str, cache: &Store<Pod>) -> bool {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = all.get(owner_uid) else {
            return true;
        };
        let created = p
            .created
            .iter()
            .all(|n| cache.get(&ObjectRef::new(n).within(ns)).is_some());
        let deleted = cache.state().iter().all(|pod| {
            !p.deleted.contains(&pod.uid().unwrap_or_default()) || !pods::is_active(pod)
        });
        let done = (created && deleted) || p.at.elapsed() > TTL;
        if done {
            all.remove(owner_uid);
        }
        done
    }

    pub fn expect(&self, owner_uid: &str, created: HashSet<String>, deleted: HashSet<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(
            owner_uid.to_string(),
            Pending {
                created,
                deleted,
                at: Instant::now(),
            },
        );
    }
}
