//! The kubelet's restart and image-pull back-off: the first retry is
//! immediate, then 10 s doubling to 5 min; a container that ran for 10 min
//! without failing starts over.

use std::time::{Duration, Instant};

const INITIAL: Duration = Duration::from_secs(10);
const MAX: Duration = Duration::from_secs(300);
const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    /// The wait after the last failure; None before the first failure.
    delay: Option<Duration>,
    last: Option<Instant>,
}

impl Backoff {
    /// Records a failure seen at `at`; returns when a retry is allowed.
    pub fn fail(&mut self, at: Instant) -> Instant {
        if self
            .last
            .is_some_and(|l| at.duration_since(l) > RESET_AFTER + self.delay.unwrap_or_default())
        {
            self.delay = None;
        }
        let wait = match self.delay {
            None => Duration::ZERO,
            Some(d) if d.is_zero() => INITIAL,
            Some(d) => (d * 2).min(MAX),
        };
        self.delay = Some(wait);
        self.last = Some(at);
        at + wait
    }

    /// When the next retry is allowed (now if never failed).
    pub fn ready_at(&self) -> Option<Instant> {
        Some(self.last? + self.delay?)
    }

    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_then_doubling_to_five_minutes() {
        let mut b = Backoff::default();
        let t = Instant::now();
        let waits: Vec<u64> = (0..8)
            .map(|i| {
                let at = t + Duration::from_secs(i);
                b.fail(at).duration_since(at).as_secs()
            })
            .collect();
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_healthy_run_resets_it() {
        let mut b = Backoff::default();
        let t = Instant::now();
        b.fail(t);
        b.fail(t + Duration::from_secs(1));
        let later = t + Duration::from_secs(2000);
        assert_eq!(b.fail(later), later);
    }
}
