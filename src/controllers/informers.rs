//! Shared informers: one watch and one cache per resource type, fanned out
//! to every controller and the scheduler (client-go's SharedInformerFactory).
//!
//! kube-runtime's own shared streams hand out only objects still in the
//! cache, so a controller never hears that a child was deleted; these carry
//! the last state of a deleted object too, which is what owner-triggered
//! reconciles (a ReplicaSet whose pod vanished) need.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

/// Events a slow subscriber may fall behind by before it is resynced from
/// the cache (it then sees every cached object once more).
const FANOUT_BUFFER: usize = 4096;

/// What an informer can hold: a typed, cluster-listable Kubernetes object.
pub trait Informable:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}
impl<K> Informable for K where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}

/// One watched resource type: its cache and its change feed.
pub struct Informer<K: Informable> {
    store: Store<K>,
    changes: broadcast::Sender<Arc<K>>,
    /// True once the first list is in. The store's own wait wakes only the
    /// last of several concurrent waiters (kube-runtime's DelayedInit keeps
    /// one waker), and controllers, the collector and every change feed
    /// wait at once.
    ready: watch::Receiver<bool>,
}

impl<K: Informable> Informer<K> {
    fn spawn(client: Client) -> Arc<Self> {
        let mut writer: Writer<K> = Writer::default();
        let store = writer.as_reader();
        let (changes, _) = broadcast::channel(FANOUT_BUFFER);
        let tx = changes.clone();
        let (ready_tx, ready) = watch::channel(false);
        let api: Api<K> = Api::all(client);
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        writer.apply_watcher_event(&event);
                        match event {
                            watcher::Event::Apply(o)
                            | watcher::Event::Delete(o)
                            | watcher::Event::InitApply(o) => {
                                // No receivers yet is fine: they replay the cache.
                                let _ = tx.send(Arc::new(o));
                            }
                            watcher::Event::InitDone => {
                                ready_tx.send_replace(true);
                            }
                            watcher::Event::Init => {}
                        }
                    }
                    Err(error) => {
                        tracing::warn!(kind = %K::kind(&()), %error, "informer watch failed; retrying")
                    }
                }
            }
        });
        Arc::new(Self {
            store,
            changes,
            ready,
        })
    }

    /// The cache (empty until the first list is in; see `ready`).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Waits until the cache holds the first full list.
    pub async fn ready(&self) {
        wait_ready(self.ready.clone()).await;
    }

    /// Every object as it changes, deleted ones as their last state. It
    /// starts with every cached object, so a late subscriber misses nothing.
    pub fn changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let rx = self.changes.subscribe();
        let store = self.store.clone();
        let replay = {
            let store = store.clone();
            let ready = self.ready.clone();
            futures::stream::once(async move {
                wait_ready(ready).await;
                futures::stream::iter(store.state())
            })
            .flatten()
        };
        let live = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
            let batch = match rx.recv().await {
                Ok(obj) => vec![obj],
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(kind = %K::kind(&()), missed, "informer subscriber lagged; resyncing");
                    store.state()
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((futures::stream::iter(batch), (rx, store)))
        })
        .flatten();
        replay.chain(live)
    }
}

async fn wait_ready(mut ready: watch::Receiver<bool>) {
    // Fails only if the watch task is gone, i.e. the runtime is shutting down.
    let _ = ready.wait_for(|r| *r).await;
}

/// The informers of one process, created on first use per type.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    by_type: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Informers {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            by_type: Arc::default(),
        }
    }

    /// The client the informers watch with; controllers write through it too.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The one informer for `K`, started on first use.
    pub fn get<K: Informable>(&self) -> Arc<Informer<K>> {
        let mut map = self.by_type.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Informer::<K>::spawn(self.client.clone()));
        match entry.clone().downcast::<Informer<K>>() {
            Ok(informer) => informer,
            // The map is keyed by the type it holds.
            Err(_) => unreachable!("informer map holds a wrong type"),
        }
    }
}
