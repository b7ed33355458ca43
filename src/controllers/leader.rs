//! Leader election through a coordination.k8s.io Lease, as client-go's
//! leaderelection with kube-controller-manager's defaults: a candidate takes
//! the Lease when it is free or expired (renewTime + leaseDurationSeconds
//! passed), the leader renews it every retry period, and a leader that could
//! not renew for the renew deadline stops its loops and campaigns again.
//! Writes carry the Lease's resourceVersion, so of two candidates only one
//! wins a race (the other gets 409).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::task::JoinSet;

/// Upstream's --leader-elect-lease-duration, -renew-deadline, -retry-period.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
const RETRY_PERIOD: Duration = Duration::from_secs(2);
const NAMESPACE: &str = "kube-system";

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// Whether the Lease, as read, lets `identity` take or keep it at `now`.
fn available(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = spec
        .lease_duration_seconds
        .map(i64::from)
        .unwrap_or(LEASE_DURATION.as_secs() as i64);
    renewed
        .checked_add(SignedDuration::from_secs(secs))
        .is_ok_and(|expiry| expiry < now)
}

impl Elector {
    pub fn new(client: Client, name: &str, identity: &str) -> Self {
        Elector {
            api: Api::namespaced(client, NAMESPACE),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }

    /// One try to take or renew the Lease; true if we hold it now.
    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let duration = LEASE_DURATION.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        if !available(&lease, &self.identity, now) {
            return Ok(false);
        }
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(MicroTime(now));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn try_quietly(&self) -> bool {
        match self.try_acquire().await {
            Ok(held) => held,
            Err(error) => {
                tracing::info!(lease = %self.name, %error, "leader election: lease not written");
                false
            }
        }
    }

    /// Runs the loops `start` spawns while this process leads, for ever:
    /// losing the Lease aborts them, winning it again starts them anew.
    pub async fn run(self, start: impl Fn(&mut JoinSet<()>)) {
        loop {
            while !self.try_quietly().await {
                tokio::time::sleep(RETRY_PERIOD).await;
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            let mut loops = JoinSet::new();
            start(&mut loops);
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(RETRY_PERIOD).await;
                if self.try_quietly().await {
                    renewed = tokio::time::Instant::now();
                } else if renewed.elapsed() >= RENEW_DEADLINE || self.held_by_other().await {
                    break;
                }
            }
            loops.shutdown().await;
            tracing::warn!(lease = %self.name, "leader election lost; loops stopped");
        }
    }

    /// Whether someone else holds the Lease now (a lost race or a takeover):
    /// then there is no point holding on until the deadline.
    async fn held_by_other(&self) -> bool {
        match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => !available(&lease, &self.identity, Timestamp::now()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> Lease {
        let now = Timestamp::now();
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    now.checked_sub(SignedDuration::from_secs(renewed_secs_ago))
                        .expect("time"),
                )),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fresh_leases_of_others_keep_us_out() {
        let now = Timestamp::now();
        assert!(available(&lease("me", 1), "me", now));
        assert!(!available(&lease("other", 1), "me", now));
        assert!(available(&lease("other", 20), "me", now));
        assert!(available(&lease("", 1), "me", now));
        assert!(available(&Lease::default(), "me", now));
    }
}
