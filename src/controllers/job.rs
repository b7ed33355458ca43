//! Job controller: runs pods until `completions` succeed (`parallelism` at
//! a time, NonIndexed or Indexed), fails the Job past `backoffLimit`,
//! `activeDeadlineSeconds` or on a podFailurePolicy FailJob rule, honours
//! `suspend`, and deletes a finished Job after `ttlSecondsAfterFinished`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{EventType, Recorder};
use super::expectations::Expectations;
use super::informers::Informers;
use super::podfailure::{self, Verdict};
use super::pods;
use super::retry::{self, Error};

const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    recorder: Recorder,
    expectations: Expectations,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.annotations().get(INDEX_ANNOTATION)?.parse().ok()
}

fn finished(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    let now = Time(Timestamp::now());
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Completed indexes in upstream's compressed form (`0-2,4`).
fn compress(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = job.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = job.spec.clone().unwrap_or_default();
    let now = Timestamp::now();

    if let Some(done) = finished(&job) {
        let Some(ttl) = spec.ttl_seconds_after_finished else {
            return Ok(Action::await_change());
        };
        let at = done
            .last_transition_time
            .as_ref()
            .map_or(now.as_second(), |t| t.0.as_second());
        let left = at + i64::from(ttl) - now.as_second();
        if left > 0 {
            return Ok(Action::requeue(Duration::from_secs(left as u64)));
        }
        let params = DeleteParams::background();
        match jobs.delete(&job.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }

    let uid = job.uid().unwrap_or_default();
    if !ctx.expectations.settled(&uid, &ns, &ctx.pods) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(ns.as_str())
                && pods::controller_of(&p.metadata).is_some_and(|c| c.uid == uid)
        })
        .collect();
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::is_active(p))
        .collect();
    let old = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let succeeded_pods: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let done_indexes: BTreeSet<i32> = succeeded_pods.iter().filter_map(|p| index_of(p)).collect();
    // Counts never go down: a finished pod deleted by someone stays counted.
    let succeeded = if indexed {
        i32::try_from(done_indexes.len()).unwrap_or(i32::MAX)
    } else {
        i32::try_from(succeeded_pods.len()).unwrap_or(i32::MAX)
    }
    .max(old.succeeded.unwrap_or(0));
    // podFailurePolicy: a FailJob match ends the Job; Ignore matches do
    // not count toward backoffLimit.
    let mut fail_job = None;
    let mut counted = 0usize;
    for pod in owned.iter().filter(|p| phase(p) == "Failed") {
        match podfailure::judge(spec.pod_failure_policy.as_ref(), pod) {
            Verdict::FailJob(message) => {
                fail_job.get_or_insert(message);
                counted += 1;
            }
            Verdict::Ignore => {}
            Verdict::Count => counted += 1,
        }
    }
    let failed = i32::try_from(counted)
        .unwrap_or(i32::MAX)
        .max(old.failed.unwrap_or(0));
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completions = spec.completions;
    let start = old.start_time.clone().unwrap_or(Time(now));
    let mut status = JobStatus {
        start_time: Some(start.clone()),
        succeeded: Some(succeeded),
        failed: Some(failed),
        conditions: old.conditions.clone(),
        completed_indexes: indexed
            .then(|| compress(&done_indexes))
            .filter(|s| !s.is_empty()),
        ..JobStatus::default()
    };

    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    let verdict = if complete {
        Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            EventType::Normal,
            "Completed",
            "Job completed",
        ))
    } else if let Some(message) = &fail_job {
        Some((
            "Failed",
            "PodFailurePolicy",
            message.as_str(),
            EventType::Warning,
            "PodFailurePolicy",
            message.as_str(),
        ))
    } else if failed > spec.backoff_limit.unwrap_or(6) {
        Some((
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            EventType::Warning,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if spec
        .active_deadline_seconds
        .is_some_and(|d| now.as_second() - start.0.as_second() >= d)
    {
        Some((
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            EventType::Warning,
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };

    let suspended = spec.suspend == Some(true);
    let mut requeue = None;
    if verdict.is_some() || suspended {
        // A finished or suspended job runs nothing.
        for pod in &active {
            match pod_api
                .delete(&pod.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        let want = match completions {
            Some(c) => parallelism.min(c - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let missing = usize::try_from(want)
            .unwrap_or(0)
            .saturating_sub(active.len());
        // Upstream's pod failure back-off: 10 s doubling per counted
        // failure, at most 6 min, from the last failure.
        let backoff_left = last_failure(&owned)
            .map(|at| {
                let delay = backoff_delay(failed).as_secs() as i64;
                at.as_second() + delay - now.as_second()
            })
            .filter(|left| *left > 0);
        if let (true, Some(left)) = (missing > 0, backoff_left) {
            requeue = Some(Duration::from_secs(left as u64));
        } else if missing > 0 {
            let taken: BTreeSet<i32> = active
                .iter()
                .filter_map(|p| index_of(p))
                .chain(done_indexes.iter().copied())
                .collect();
            let mut free = (0..completions.unwrap_or(0)).filter(|i| !taken.contains(i));
            let mut created = std::collections::HashSet::new();
            for _ in 0..missing {
                let index = if indexed { free.next() } else { None };
                if indexed && index.is_none() {
                    break;
                }
                match create_pod(&job, &ctx, &pod_api, index).await {
                    Ok(name) => {
                        created.insert(name);
                    }
                    Err(e) => {
                        ctx.expectations.expect(&uid, created, Default::default());
                        return Err(e);
                    }
                }
            }
            ctx.expectations.expect(&uid, created, Default::default());
        }
        if let Some(d) = spec.active_deadline_seconds {
            let left = d - (now.as_second() - start.0.as_second());
            requeue = Some(Duration::from_secs(left.max(1) as u64));
        }
    }

    let mut conds = status.conditions.take().unwrap_or_default();
    if let Some((type_, reason, message, kind, ev_reason, ev_message)) = verdict {
        conds.push(condition(type_, reason, message));
        if type_ == "Complete" {
            status.completion_time = Some(Time(now));
        }
        ctx.recorder
            .record(&*job, kind, ev_reason, ev_message)
            .await;
        status.active = Some(0);
    } else {
        status.active = Some(i32::try_from(active.len()).unwrap_or(i32::MAX));
        status.ready =
            Some(i32::try_from(active.iter().filter(|p| pods::is_ready(p)).count()).unwrap_or(0));
    }
    let had_suspended = conds
        .iter()
        .any(|c| c.type_ == "Suspended" && c.status == "True");
    if suspended && !had_suspended {
        conds.retain(|c| c.type_ != "Suspended");
        conds.push(condition("Suspended", "JobSuspended", "Job suspended"));
    } else if !suspended && had_suspended {
        conds.retain(|c| c.type_ != "Suspended");
    }
    status.conditions = (!conds.is_empty()).then_some(conds);
    if status != old {
        let patch = json!({"status": status});
        jobs.patch_status(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

async fn create_pod(
    job: &Job,
    ctx: &Ctx,
    api: &Api<Pod>,
    index: Option<i32>,
) -> Result<String, Error> {
    let spec = job.spec.clone().unwrap_or_default();
    let name = job.name_any();
    let prefix = match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    let mut pod = pods::from_template(&spec.template, pods::controller_ref(job), &prefix);
    let uid = job.uid().unwrap_or_default();
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("job-name", name.as_str()),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.into());
    }
    if let Some(i) = index {
        labels.insert(INDEX_ANNOTATION.into(), i.to_string());
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(INDEX_ANNOTATION.into(), i.to_string());
        // The index reaches the containers as upstream passes it.
        if let Some(spec) = pod.spec.as_mut() {
            for c in &mut spec.containers {
                c.env
                    .get_or_insert_with(Vec::new)
                    .push(k8s_openapi::api::core::v1::EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value: Some(i.to_string()),
                        value_from: None,
                    });
            }
        }
    }
    Ok(pods::create(api, &ctx.recorder, job, &pod).await?)
}

/// Runs the Job controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let jobs = informers.get::<Job>();
    let pod_informer = informers.get::<Pod>();
    jobs.ready().await;
    pod_informer.ready().await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        recorder: Recorder::new(client, "job-controller"),
        expectations: Expectations::default(),
    });
    Controller::for_shared_stream(jobs.changes(), jobs.store())
        .owns_shared_stream(pod_informer.changes())
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

/// 10 s doubling per failure, capped at 6 min (upstream's DefaultJobPodFailureBackOff
/// and MaxJobPodFailureBackOff).
fn backoff_delay(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - 1).unwrap_or(0).min(6);
    Duration::from_secs(10u64 << doublings).min(Duration::from_secs(360))
}

/// When the latest failed pod's last container finished.
fn last_failure(pods: &[Arc<Pod>]) -> Option<Timestamp> {
    pods.iter()
        .filter(|p| phase(p) == "Failed")
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

#[cfg(test)]
mod tests {
    use super::{backoff_delay, compress};

    #[test]
    fn failure_backoff_doubles_to_six_minutes() {
        let secs = |n| backoff_delay(n).as_secs();
        assert_eq!([secs(0), secs(1), secs(2), secs(3)], [0, 10, 20, 40]);
        assert_eq!(secs(6), 320);
        assert_eq!(secs(7), 360);
        assert_eq!(secs(1000), 360);
    }

    #[test]
    fn completed_indexes_compress_to_ranges() {
        let set = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(compress(&set), "0-2,4,6-7");
        assert_eq!(compress(&Default::default()), "");
    }
}
