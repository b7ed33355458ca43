//! Max-in-flight limits, like kube-apiserver's --max-requests-inflight and
//! --max-mutating-requests-inflight: past them a request gets 429 at once
//! instead of queueing without bound. Watches are long-running and not counted,
//! and system:masters is exempt, as in kube-apiserver's WithMaxInFlightLimit:
//! the in-process controllers and scheduler run in that group, so a burst of
//! their own writes (the scheduler's bindings and events) is never refused.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::apiserver::status::ApiError;
use crate::identity::UserInfo;

/// Upstream's user.SystemPrivilegedGroup.
const EXEMPT_GROUP: &str = "system:masters";

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

    /// Take a slot for a request of this verb by this user, or refuse with 429.
    pub fn admit(&self, verb: &str, user: &UserInfo) -> Result<Option<Slot<'_>>, ApiError> {
        if user.groups.iter().any(|g| g == EXEMPT_GROUP) {
            return Ok(None);
        }
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

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "u".into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let f = Inflight::new(1, 1);
        let u = user(&["system:authenticated"]);
        let a = f.admit("GET", &u).expect("first read");
        assert_eq!(f.admit("LIST", &u).err().map(|e| e.code), Some(429));
        assert!(f.admit("POST", &u).is_ok(), "writes have their own limit");
        assert!(f.admit("WATCH", &u).expect("watch").is_none());
        drop(a);
        assert!(f.admit("GET", &u).is_ok());
    }

    #[test]
    fn system_masters_is_exempt() {
        let f = Inflight::new(0, 0);
        let admin = user(&["system:masters", "system:authenticated"]);
        assert!(f.admit("POST", &admin).expect("exempt").is_none());
        assert_eq!(f.admit("POST", &user(&[])).err().map(|e| e.code), Some(429));
    }
}
