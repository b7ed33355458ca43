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
use tokio::sync::{mpsc, watch};

/// What an informer can hold: a typed, cluster-listable Kubernetes object.
pub trait Informable:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}
impl<K> Informable for K where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}

/// Each subscriber's queue of changes. A queue holds an object version only
/// until its subscriber has taken it, and nothing while idle; one ring shared
/// by all would keep its last N versions alive, superseded and deleted
/// objects too, for every resource type.
type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>>;

/// One watched resource type: its cache and its change feed.
pub struct Informer<K: Informable> {
    store: Store<K>,
    subscribers: Subscribers<K>,
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
        let subscribers: Subscribers<K> = Arc::default();
        let fanout = subscribers.clone();
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
                                // Late subscribers replay the cache instead.
                                let o = Arc::new(o);
                                lock(&fanout).retain(|tx| tx.send(o.clone()).is_ok());
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
            subscribers,
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
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.subscribers).push(tx);
        let replay = {
            let store = self.store.clone();
            let ready = self.ready.clone();
            futures::stream::once(async move {
                wait_ready(ready).await;
                futures::stream::iter(store.state())
            })
            .flatten()
        };
        replay.chain(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave a list of senders half-changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut map = lock(&self.by_type);
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
