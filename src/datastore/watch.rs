//! Watch fan-out: the writer hands each committed batch to the
//! [`Broadcaster`], which pushes matching events into every subscriber's
//! bounded queue without ever blocking the writer. A per-watch task
//! (`forward`) first replays the log, then drains that queue into the
//! caller's channel.
//!
//! No gap, no duplicate: a subscriber is registered under the same lock the
//! writer publishes under, and registration returns the last published
//! revision R. Everything <= R is committed, so it is replayed from the log;
//! everything > R arrives live. The forwarder also drops any live event at or
//! below what it already sent, so the order of the two never matters.
//!
//! A subscriber whose queue is full is cut off (not skipped over): its task
//! delivers what was queued, then a final `StoreError::TooSlow`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::read::{self, ReadPool};
use super::{Event, StoreError, StoreResult, WatchReceiver};

/// Events replayed from the log per read.
const REPLAY_PAGE: usize = 1000;
/// The caller's channel; the real buffer is the live queue in front of it.
const OUT_CAPACITY: usize = 256;

pub(super) struct Broadcaster {
    inner: Mutex<Inner>,
}

struct Inner {
    last_revision: i64,
    subs: Vec<Subscriber>,
    closed: bool,
}

struct Subscriber {
    prefix: String,
    queue: mpsc::Sender<Event>,
    overflowed: Arc<AtomicBool>,
}

/// What a new watch gets from [`Broadcaster::subscribe`].
pub(super) struct Subscription {
    /// Last revision published before the subscriber was added.
    pub(super) registered_at: i64,
    pub(super) live: mpsc::Receiver<Event>,
    pub(super) overflowed: Arc<AtomicBool>,
}

impl Broadcaster {
    pub(super) fn new(last_revision: i64) -> Self {
        Broadcaster {
            inner: Mutex::new(Inner {
                last_revision,
                subs: Vec::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data (a list of senders) stays valid even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn subscribe(&self, prefix: &str, capacity: usize) -> StoreResult<Subscription> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(shutting_down());
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        inner.subs.push(Subscriber {
            prefix: prefix.to_owned(),
            queue: tx,
            overflowed: Arc::clone(&overflowed),
        });
        Ok(Subscription {
            registered_at: inner.last_revision,
            live: rx,
            overflowed,
        })
    }

    /// Called by the writer after a commit, with the batch's events in
    /// revision order and the last revision of the batch.
    pub(super) fn publish(&self, revision: i64, events: &[Event]) {
        let mut inner = self.lock();
        inner.last_revision = revision;
        inner.subs.retain(|sub| {
            if sub.queue.is_closed() {
                return false;
            }
            for ev in events.iter().filter(|e| e.kv.key.starts_with(&sub.prefix)) {
                match sub.queue.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        sub.overflowed.store(true, Ordering::Release);
                        return false;
                    }
                    Err(TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// The store is going away: end every watch.
    pub(super) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.subs.clear();
    }

    #[cfg(test)]
    pub(super) fn watcher_count(&self) -> usize {
        self.lock().subs.len()
    }
}

fn shutting_down() -> StoreError {
    StoreError::Internal("datastore is shutting down".into())
}

/// Start a watch: subscribe, then spawn the task that replays and forwards.
pub(super) fn start(
    rt: &tokio::runtime::Handle,
    broadcaster: &Broadcaster,
    pool: Arc<ReadPool>,
    prefix: &str,
    after_revision: i64,
    capacity: usize,
) -> StoreResult<WatchReceiver> {
    let sub = broadcaster.subscribe(prefix, capacity)?;
    let (out, rx) = mpsc::channel(OUT_CAPACITY);
    rt.spawn(forward(pool, prefix.to_owned(), after_revision, sub, out));
    Ok(rx)
}

async fn forward(
    pool: Arc<ReadPool>,
    prefix: String,
    after_revision: i64,
    mut sub: Subscription,
    out: mpsc::Sender<StoreResult<Event>>,
) {
    let mut last = after_revision;
    // Replay (after_revision, registered_at] from the log, page by page.
    while last < sub.registered_at {
        let (p, upto) = (prefix.clone(), sub.registered_at);
        let page = pool
            .run(move |conn| read::replay(conn, &p, last, upto, REPLAY_PAGE))
            .await;
        let events = match page {
            Ok(events) => events,
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return;
            }
        };
        let full_page = events.len() == REPLAY_PAGE;
        for ev in events {
            last = ev.kv.mod_revision;
            if out.send(Ok(ev)).await.is_err() {
                return;
            }
        }
        if !full_page {
            break;
        }
    }
    last = last.max(sub.registered_at);

    loop {
        tokio::select! {
            ev = sub.live.recv() => match ev {
                Some(ev) => {
                    if ev.kv.mod_revision <= last {
                        continue;
                    }
                    last = ev.kv.mod_revision;
                    if out.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                None => {
                    let why = if sub.overflowed.load(Ordering::Acquire) {
                        StoreError::TooSlow { last_delivered: last }
                    } else {
                        shutting_down()
                    };
                    let _ = out.send(Err(why)).await;
                    return;
                }
            },
            // The caller dropped the stream: drop our queue so the writer
            // forgets this subscriber at its next publish.
            _ = out.closed() => return,
        }
    }
}
