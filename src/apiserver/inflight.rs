//! Max-in-flight limits, like kube-apiserver's --max-requests-inflight and
//! --max-mutating-requests-inflight: past them a request gets 429 at once
//! instead of queueing without bound. Watches are long-running and not counted.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::apiserver::status::ApiError;

pub struct Inflight {
    reads: AtomicUsize,
    writes: AtomicUsize,
    max_reads: usize,
    max_writes: usize,
}

/// Holds one slot until dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inflight {
    pub fn new(max_reads: usize, max_writes: usize) -> Self {
        Inflight {
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            max_reads,
            max_writes,
        }
    }

    /// Take a slot for a request of this verb, or refuse with 429.
    pub fn admit(&self, verb: &str) -> Result<Option<Slot<'_>>, ApiError> {
        let (count, max) = match verb {
            "WATCH" => return Ok(None),
            "GET" | "LIST" => (&self.reads, self.max_reads),
            _ => (&self.writes, self.max_writes),
        };
        if count.fetch_add(1, Ordering::AcqRel) >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            e.details = Some(serde_json::json!({ "retryAfterSeconds": 1 }));
            return Err(e);
        }
        Ok(Some(Slot(count)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let f = Inflight::new(1, 1);
        let a = f.admit("GET").expect("first read");
        assert_eq!(f.admit("LIST").err().map(|e| e.code), Some(429));
        assert!(f.admit("POST").is_ok(), "writes have their own limit");
        assert!(f.admit("WATCH").expect("watch").is_none());
        drop(a);
        assert!(f.admit("GET").is_ok());
    }
}
