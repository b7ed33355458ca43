//! The scheduling queue: pods waiting for a try (active), pods backing off
//! after a failed try, and unschedulable pods parked until the cluster
//! changes (upstream's activeQ, backoffQ and unschedulablePods).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Upstream's podInitialBackoffDuration and podMaxBackoffDuration.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even if nothing in
/// the cluster seems to change (upstream waits 5 min; shorter is cheap here).
const MAX_PARKED: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Queue {
    active: VecDeque<String>,
    in_active: HashSet<String>,
    /// Key → when its back-off ends.
    backoff: HashMap<String, Instant>,
    /// Key → when it was parked.
    parked: HashMap<String, Instant>,
    /// Key → (failed tries, when the last one failed).
    failures: HashMap<String, (u32, Instant)>,
}

impl Queue {
    fn activate(&mut self, key: &str) {
        if self.in_active.insert(key.to_string()) {
            self.active.push_back(key.to_string());
        }
    }

    /// A pending pod appeared or changed in a way that may matter.
    pub fn add(&mut self, key: &str) {
        if self.in_active.contains(key) || self.backoff.contains_key(key) {
            return;
        }
        if self.parked.remove(key).is_some() {
            self.requeue(key);
        } else {
            self.activate(key);
        }
    }

    /// Back to active, or to back-off if its back-off has not ended.
    fn requeue(&mut self, key: &str) {
        let until = self.backoff_end(key);
        if until > Instant::now() {
            self.backoff.insert(key.to_string(), until);
        } else {
            self.activate(key);
        }
    }

    /// Counted from the last failed try, as upstream does, so a pod that
    /// was parked longer than its back-off is tried at once when the
    /// cluster changes.
    fn backoff_end(&self, key: &str) -> Instant {
        let Some(&(n, failed)) = self.failures.get(key) else {
            return Instant::now();
        };
        let d = INITIAL_BACKOFF
            .saturating_mul(1 << (n.max(1) - 1).min(16))
            .min(MAX_BACKOFF);
        failed + d
    }

    fn failed(&mut self, key: &str) {
        let entry = self
            .failures
            .entry(key.to_string())
            .or_insert((0, Instant::now()));
        *entry = (entry.0 + 1, Instant::now());
    }

    /// The pod is bound or gone.
    pub fn forget(&mut self, key: &str) {
        if self.in_active.remove(key) {
            self.active.retain(|k| k != key);
        }
        self.backoff.remove(key);
        self.parked.remove(key);
        self.failures.remove(key);
    }

    /// A try found no node: park it until something changes.
    pub fn unschedulable(&mut self, key: &str) {
        self.failed(key);
        self.parked.insert(key.to_string(), Instant::now());
    }

    /// A try failed for a reason that is not about the cluster (a failed
    /// binding): retry after its back-off.
    pub fn retry(&mut self, key: &str) {
        self.failed(key);
        let until = self.backoff_end(key);
        self.backoff.insert(key.to_string(), until);
    }

    /// Nodes or pods changed: every parked pod gets another try.
    pub fn move_all(&mut self) {
        let keys: Vec<String> = self.parked.drain().map(|(k, _)| k).collect();
        for k in keys {
            self.requeue(&k);
        }
    }

    /// Pods whose time has come: ended back-offs and long-parked pods join
    /// the active ones, of which the first `limit` are handed out.
    pub fn pop_ready(&mut self, limit: usize) -> Vec<String> {
        let now = Instant::now();
        let done: Vec<String> = self
            .backoff
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in done {
            self.backoff.remove(&k);
            self.activate(&k);
        }
        let stale: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= MAX_PARKED)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.parked.remove(&k);
            self.requeue(&k);
        }
        let n = limit.min(self.active.len());
        let out: Vec<String> = self.active.drain(..n).collect();
        for k in &out {
            self.in_active.remove(k);
        }
        out
    }

    /// When `pop_ready` next has something without new events.
    pub fn next_wake(&self) -> Instant {
        if !self.active.is_empty() {
            return Instant::now();
        }
        let backoff = self.backoff.values().min().copied();
        let parked = self.parked.values().min().map(|t| *t + MAX_PARKED);
        [backoff, parked]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + MAX_PARKED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_pods_wait_for_a_change_then_back_off() {
        let mut q = Queue::default();
        q.add("a");
        q.add("a");
        assert_eq!(q.pop_ready(10), ["a"]);
        q.unschedulable("a");
        q.add("b");
        assert_eq!(q.pop_ready(10), ["b"]);
        q.forget("b");
        // A cluster change moves "a" to back-off (1 s after its first failure).
        q.move_all();
        assert!(q.pop_ready(10).is_empty());
        assert!(q.next_wake() > Instant::now());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(q.pop_ready(10), ["a"]);
    }

    #[test]
    fn active_pods_are_handed_out_in_order_up_to_the_limit() {
        let mut q = Queue::default();
        for k in ["a", "b", "c"] {
            q.add(k);
        }
        assert_eq!(q.pop_ready(2), ["a", "b"]);
        assert!(q.next_wake() <= Instant::now(), "c is still waiting");
        q.add("a");
        assert_eq!(q.pop_ready(2), ["c", "a"]);
    }

    #[test]
    fn back_off_counts_from_the_last_failure() {
        let mut q = Queue::default();
        q.add("a");
        assert_eq!(q.pop_ready(10), ["a"]);
        q.unschedulable("a");
        // Parked longer than its 1 s back-off: a change retries it at once.
        std::thread::sleep(Duration::from_millis(1100));
        q.move_all();
        assert_eq!(q.pop_ready(10), ["a"]);
        // A second failure doubles the back-off from that failure on.
        q.unschedulable("a");
        q.move_all();
        assert!(q.pop_ready(10).is_empty());
        let wait = q.next_wake().saturating_duration_since(Instant::now());
        assert!(wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2));
    }
}
