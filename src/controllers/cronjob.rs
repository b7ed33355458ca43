//! CronJob controller: a Job per schedule time (cron syntax through the
//! croner crate, in `spec.timeZone` through chrono-tz), concurrencyPolicy,
//! startingDeadlineSeconds, suspend, history limits, and the
//! lastScheduleTime / lastSuccessfulTime / active status.
//!
//! The controller reads its clock through `Clock`: real time, unless
//! `KONE_CRONJOB_CLOCK_SPEED` makes it run faster for this controller only
//! (tests run a minute schedule in seconds without touching the rest).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use croner::Cron;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::informers::Informers;
use super::pods;
use super::retry::{self, Error};

const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream gives up on counting missed schedules past this many.
const MAX_MISSED: usize = 100;

/// The controller's clock: real time, or real time sped up from the start.
#[derive(Clone, Copy)]
pub struct Clock {
    start_real: Instant,
    start: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    pub fn from_env() -> Self {
        let speed = std::env::var("KONE_CRONJOB_CLOCK_SPEED")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s >= 1.0)
            .unwrap_or(1.0);
        Clock {
            start_real: Instant::now(),
            start: Utc::now(),
            speed,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.start_real.elapsed().as_secs_f64() * self.speed;
        self.start + chrono::Duration::milliseconds((elapsed * 1000.0) as i64)
    }

    /// Real time until the clock shows `at`.
    fn until(&self, at: DateTime<Utc>) -> Duration {
        let ms = (at - self.now()).num_milliseconds().max(0) as f64 / self.speed;
        Duration::from_millis(ms as u64 + 100)
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    recorder: Recorder,
    clock: Clock,
}

fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), 0).unwrap_or_default()
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Schedule times after `from` up to `now`, in the CronJob's time zone;
/// None if the schedule or zone does not parse.
fn due_times(
    schedule: &str,
    zone: Option<&str>,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Vec<DateTime<Utc>>> {
    let cron = Cron::from_str(schedule).ok()?;
    let tz: chrono_tz::Tz = match zone {
        Some(z) => z.parse().ok()?,
        None => chrono_tz::UTC,
    };
    let mut out = Vec::new();
    let mut t = from.with_timezone(&tz);
    while let Ok(next) = cron.find_next_occurrence(&t, false) {
        let next_utc = next.with_timezone(&Utc);
        if next_utc > now || out.len() > MAX_MISSED {
            break;
        }
        out.push(next_utc);
        t = next;
    }
    Some(out)
}

fn next_time(schedule: &str, zone: Option<&str>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = Cron::from_str(schedule).ok()?;
    let tz: chrono_tz::Tz = match zone {
        Some(z) => z.parse().ok()?,
        None => chrono_tz::UTC,
    };
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Finished as Complete (true) or Failed (false), or still running.
fn outcome(job: &Job) -> Option<bool> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_ == "Complete")
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cjs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = cj.spec.clone().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let now = ctx.clock.now();
    let mut owned: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| {
            j.namespace().as_deref() == Some(ns.as_str())
                && pods::controller_of(&j.metadata).is_some_and(|c| c.uid == uid)
        })
        .collect();
    owned.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let old = cj.status.clone().unwrap_or_default();
    let mut status = old.clone();

    let mut active: Vec<&Job> = owned
        .iter()
        .map(|j| &**j)
        .filter(|j| outcome(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();
    for job in owned.iter().filter(|j| outcome(j) == Some(true)) {
        let done = job
            .status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .map(to_chrono);
        let last = status.last_successful_time.as_ref().map(to_chrono);
        if done.is_some() && done > last {
            status.last_successful_time = done.map(to_time);
            ctx.recorder
                .record(
                    &*cj,
                    EventType::Normal,
                    "SawCompletedJob",
                    &format!("Saw completed job: {}, condition: Complete", job.name_any()),
                )
                .await;
        }
    }

    let zone = spec.time_zone.as_deref();
    let from = status
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, to_chrono);
    let Some(due) = due_times(&spec.schedule, zone, from, now) else {
        ctx.recorder
            .record(
                &*cj,
                EventType::Warning,
                "UnparseableSchedule",
                &format!(
                    "unparseable schedule {:?} or time zone {:?}",
                    spec.schedule, zone
                ),
            )
            .await;
        return Ok(Action::await_change());
    };
    if let (Some(&scheduled), false) = (due.last(), spec.suspend == Some(true)) {
        let too_late = spec
            .starting_deadline_seconds
            .is_some_and(|d| (now - scheduled).num_seconds() > d);
        let forbid = spec.concurrency_policy.as_deref() == Some("Forbid") && !active.is_empty();
        if too_late {
            ctx.recorder
                .record(
                    &*cj,
                    EventType::Warning,
                    "MissSchedule",
                    &format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled.to_rfc3339()
                    ),
                )
                .await;
            status.last_schedule_time = Some(to_time(scheduled));
        } else if forbid {
            // Tried again at the next change or schedule time.
            tracing::debug!(cronjob = %cj.name_any(), "an active job forbids a new one");
        } else {
            if spec.concurrency_policy.as_deref() == Some("Replace") {
                for job in active.drain(..) {
                    match jobs_api
                        .delete(&job.name_any(), &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {
                            ctx.recorder
                                .record(
                                    &*cj,
                                    EventType::Normal,
                                    "SuccessfulDelete",
                                    &format!("Deleted job {}", job.name_any()),
                                )
                                .await
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let job = new_job(&cj, &spec.job_template, scheduled);
            match jobs_api.create(&PostParams::default(), &job).await {
                Ok(created) => {
                    ctx.recorder
                        .record(
                            &*cj,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created job {}", created.name_any()),
                        )
                        .await;
                    status
                        .active
                        .get_or_insert_with(Vec::new)
                        .push(reference(&created));
                }
                // Made by an earlier sync whose status write was lost.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            status.last_schedule_time = Some(to_time(scheduled));
        }
    }

    // Active list from what runs now (plus a job just made).
    let mut refs: Vec<ObjectReference> = active.iter().map(|j| reference(j)).collect();
    for r in status.active.take().unwrap_or_default() {
        if !refs.iter().any(|x| x.name == r.name)
            && !owned.iter().any(|j| j.metadata.name == r.name)
        {
            refs.push(r);
        }
    }
    status.active = (!refs.is_empty()).then_some(refs);

    cleanup(
        &cj,
        &ctx,
        &jobs_api,
        &owned,
        true,
        spec.successful_jobs_history_limit.unwrap_or(3),
    )
    .await?;
    cleanup(
        &cj,
        &ctx,
        &jobs_api,
        &owned,
        false,
        spec.failed_jobs_history_limit.unwrap_or(1),
    )
    .await?;

    if status != old {
        let patch = json!({"status": status});
        cjs.patch_status(
            &cj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(match next_time(&spec.schedule, zone, now) {
        Some(next) => Action::requeue(ctx.clock.until(next)),
        None => Action::await_change(),
    })
}

/// Deletes the oldest finished jobs of one outcome beyond its limit.
async fn cleanup(
    cj: &CronJob,
    ctx: &Ctx,
    api: &Api<Job>,
    owned: &[Arc<Job>],
    succeeded: bool,
    limit: i32,
) -> Result<(), Error> {
    let finished: Vec<&Arc<Job>> = owned
        .iter()
        .filter(|j| outcome(j) == Some(succeeded) && j.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = finished
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for job in &finished[..excess] {
        match api
            .delete(&job.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {
                ctx.recorder
                    .record(
                        cj,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted job {}", job.name_any()),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The Job for one schedule time, named `<cronjob>-<minutes since epoch>`.
fn new_job(
    cj: &CronJob,
    template: &k8s_openapi::api::batch::v1::JobTemplateSpec,
    scheduled: DateTime<Utc>,
) -> Job {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_AT.into(), scheduled.to_rfc3339());
    Job {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", cj.name_any(), scheduled.timestamp() / 60)),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![pods::controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: Some(template.spec.clone().unwrap_or_default()),
        status: None,
    }
}

/// Runs the CronJob controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let cronjobs = informers.get::<CronJob>();
    let jobs = informers.get::<Job>();
    cronjobs.ready().await;
    jobs.ready().await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs: jobs.store(),
        recorder: Recorder::new(client, "cronjob-controller"),
        clock: Clock::from_env(),
    });
    Controller::for_shared_stream(cronjobs.changes(), cronjobs.store())
        .owns_shared_stream(jobs.changes())
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn due_times_in_utc_and_zones() {
        let due = due_times(
            "*/15 * * * *",
            None,
            at("2026-01-01T00:00:00Z"),
            at("2026-01-01T01:00:00Z"),
        );
        assert_eq!(due.map(|d| d.len()), Some(4));
        // 09:00 in Berlin (UTC+1 in January) is 08:00 UTC.
        let due = due_times(
            "0 9 * * *",
            Some("Europe/Berlin"),
            at("2026-01-01T00:00:00Z"),
            at("2026-01-02T00:00:00Z"),
        );
        assert_eq!(due, Some(vec![at("2026-01-01T08:00:00Z")]));
        assert_eq!(
            due_times(
                "nonsense",
                None,
                at("2026-01-01T00:00:00Z"),
                at("2026-01-01T00:00:00Z")
            ),
            None
        );
        assert_eq!(
            due_times(
                "* * * * *",
                Some("Mars/Base"),
                at("2026-01-01T00:00:00Z"),
                at("2026-01-01T00:00:00Z")
            ),
            None
        );
    }
}
