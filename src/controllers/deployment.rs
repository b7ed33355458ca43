//! Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`; rolling updates within maxSurge and
//! maxUnavailable, Recreate, revisions, history cleanup, pause, and the
//! Available and Progressing conditions `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

struct Ctx {
    client: Client,
    sets: Store<ReplicaSet>,
    recorder: Recorder,
}

/// A template's hash as upstream spells it (see `revisions::safe_hash`).
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    super::revisions::safe_hash(
        &serde_json::to_vec(template).unwrap_or_default(),
        collisions,
    )
}

/// A template without the hash label, for comparing an RS to its deployment.
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// An int-or-percent of `total` (percentages round up for surge, down for
/// unavailability, as upstream).
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool, default_pct: i32) -> i32 {
    let pct = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.trim_end_matches('%').parse::<i32>().unwrap_or(0),
        None => default_pct,
    };
    let x = i64::from(pct) * i64::from(total);
    let r = if round_up { (x + 99) / 100 } else { x / 100 };
    i32::try_from(r).unwrap_or(i32::MAX)
}

/// maxSurge and maxUnavailable resolved; both zero would stall, so
/// unavailability is then one, as upstream.
pub fn surge_and_unavailable(d: &Deployment, replicas: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), replicas, true, 25);
    let unavailable = scaled(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
        false,
        25,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(replicas))
    }
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The sets a deployment controls, adopting orphans its selector matches.
async fn claim(d: &Deployment, ctx: &Ctx, ns: &str) -> Result<Vec<ReplicaSet>, Error> {
    let uid = d.uid().unwrap_or_default();
    let selector = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let mut owned = Vec::new();
    for rs in ctx.sets.state() {
        if rs.namespace().as_deref() != Some(ns) {
            continue;
        }
        match pods::controller_of(&rs.metadata) {
            Some(c) if c.uid == uid => owned.push((*rs).clone()),
            None if d.metadata.deletion_timestamp.is_none()
                && rs.metadata.deletion_timestamp.is_none()
                && pods::selects(&selector, rs.metadata.labels.as_ref()) =>
            {
                let mut refs = rs.owner_references().to_vec();
                refs.push(pods::controller_ref(d));
                let patch = json!({"metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": rs.resource_version(),
                }});
                match api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(adopted) => owned.push(adopted),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {}
        }
    }
    owned.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    Ok(owned)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let mut sets = claim(&d, &ctx, &ns).await?;
    let template = without_hash(&spec.template);
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let new_idx = sets.iter().position(|rs| {
        rs.labels().get(HASH_LABEL) == Some(&hash)
            || rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| without_hash(t) == template)
    });
    let max_revision = sets.iter().map(revision).max().unwrap_or(0);
    let paused = spec.paused == Some(true);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let sc = Scaler {
        ctx: &ctx,
        d: &d,
        api: Api::namespaced(ctx.client.clone(), &ns),
    };
    let mut created = None;
    let mut new_idx = new_idx;

    if paused {
        // Only scaling while paused: the newest set follows replicas when
        // it is the only one with pods.
        if let Some(i) = new_idx {
            if sets
                .iter()
                .enumerate()
                .all(|(j, rs)| j == i || spec_replicas(rs) == 0)
            {
                sc.scale(&mut sets[i], replicas).await?;
            }
        }
    } else {
        // The new set carries the highest revision, even when an old one is
        // reused by a rollback.
        if let Some(i) = new_idx {
            if revision(&sets[i]) < max_revision || revision(&sets[i]) == 0 {
                let next = (max_revision + 1).max(1);
                sets[i] = sc.annotate_revision(&sets[i], next).await?;
            }
        }
        let (surge, unavailable) = surge_and_unavailable(&d, replicas);
        if recreate {
            let mut old_active = false;
            for (j, rs) in sets.iter_mut().enumerate() {
                if Some(j) != new_idx {
                    sc.scale(rs, 0).await?;
                    old_active |= rs.status.as_ref().is_some_and(|s| s.replicas > 0);
                }
            }
            if !old_active {
                match new_idx {
                    Some(i) => sc.scale(&mut sets[i], replicas).await?,
                    None => {
                        let rs = sc.create(&hash, replicas, max_revision + 1).await?;
                        created = Some(rs.name_any());
                        sets.push(rs);
                        new_idx = Some(sets.len() - 1);
                    }
                }
            }
        } else {
            let i = match new_idx {
                Some(i) => i,
                None => {
                    let total: i32 = sets.iter().map(spec_replicas).sum();
                    let start = (replicas + surge - total).clamp(0, replicas);
                    let rs = sc.create(&hash, start, max_revision + 1).await?;
                    created = Some(rs.name_any());
                    sets.push(rs);
                    sets.len() - 1
                }
            };
            new_idx = Some(i);
            roll(&sc, &mut sets, i, replicas, surge, unavailable).await?;
        }
        cleanup(
            &sc,
            &sets,
            new_idx,
            spec.revision_history_limit.unwrap_or(10),
        )
        .await?;
    }
    if let Some(i) = new_idx {
        sc.note_revision(revision(&sets[i])).await?;
    }
    let requeue = update_status(&d, &ctx, &ns, &sets, new_idx, created.as_deref()).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// One rolling-update step (upstream's reconcileNewReplicaSet and
/// reconcileOldReplicaSets).
async fn roll(
    sc: &Scaler<'_>,
    sets: &mut [ReplicaSet],
    new: usize,
    replicas: i32,
    surge: i32,
    unavailable: i32,
) -> Result<(), Error> {
    let current = spec_replicas(&sets[new]);
    if current > replicas {
        sc.scale(&mut sets[new], replicas).await?;
    } else if current < replicas {
        let total: i32 = sets.iter().map(spec_replicas).sum();
        let room = (replicas + surge - total).max(0);
        let target = current + room.min(replicas - current);
        sc.scale(&mut sets[new], target).await?;
    }
    let old_count: i32 = sets
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != new)
        .map(|(_, rs)| spec_replicas(rs))
        .sum();
    if old_count == 0 {
        return Ok(());
    }
    let all: i32 = sets.iter().map(spec_replicas).sum();
    let min_available = replicas - unavailable;
    let new_unavailable = (spec_replicas(&sets[new]) - available(&sets[new])).max(0);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(());
    }
    // First the old pods that are not available anyway.
    let mut cleaned = 0;
    for (j, rs) in sets.iter_mut().enumerate() {
        if j == new || cleaned >= max_scaled_down {
            continue;
        }
        let (want, avail) = (spec_replicas(rs), available(rs));
        if want <= avail {
            continue;
        }
        let down = (want - avail).min(max_scaled_down - cleaned);
        sc.scale(rs, want - down).await?;
        cleaned += down;
    }
    // Then available ones, keeping minAvailable.
    let available_now: i32 = sets.iter().map(available).sum();
    let mut budget = (available_now - min_available).min(max_scaled_down - cleaned);
    for (j, rs) in sets.iter_mut().enumerate() {
        if j == new || budget <= 0 {
            continue;
        }
        let want = spec_replicas(rs);
        let down = want.min(budget);
        if down > 0 {
            sc.scale(rs, want - down).await?;
            budget -= down;
        }
    }
    Ok(())
}

/// Deletes old sets with no replicas beyond revisionHistoryLimit, oldest
/// first.
async fn cleanup(
    sc: &Scaler<'_>,
    sets: &[ReplicaSet],
    new: Option<usize>,
    limit: i32,
) -> Result<(), Error> {
    let mut idle: Vec<&ReplicaSet> = sets
        .iter()
        .enumerate()
        .filter(|(j, rs)| {
            Some(*j) != new
                && spec_replicas(rs) == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .map(|(_, rs)| rs)
        .collect();
    idle.sort_by_key(|rs| revision(rs));
    let excess = idle
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for rs in &idle[..excess] {
        match sc
            .api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes to a deployment's ReplicaSets and tells the events.
struct Scaler<'a> {
    ctx: &'a Ctx,
    d: &'a Deployment,
    api: Api<ReplicaSet>,
}

impl Scaler<'_> {
    async fn scale(&self, rs: &mut ReplicaSet, to: i32) -> Result<(), Error> {
        let from = spec_replicas(rs);
        let replicas = self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let (surge, _) = surge_and_unavailable(self.d, replicas);
        let desired = replicas.to_string();
        let max = (replicas + surge).to_string();
        let annotations = rs.annotations();
        if from == to
            && annotations.get(DESIRED) == Some(&desired)
            && annotations.get(MAX_REPLICAS) == Some(&max)
        {
            return Ok(());
        }
        let patch = json!({
            "metadata": {
                "annotations": {DESIRED: desired, MAX_REPLICAS: max},
                "resourceVersion": rs.resource_version(),
            },
            "spec": {"replicas": to},
        });
        *rs = self
            .api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        if from != to {
            let way = if to > from { "up" } else { "down" };
            let msg = format!(
                "Scaled {way} replica set {} from {from} to {to}",
                rs.name_any()
            );
            self.ctx
                .recorder
                .record(self.d, EventType::Normal, "ScalingReplicaSet", &msg)
                .await;
        }
        Ok(())
    }

    /// The deployment carries its current revision too, as upstream (and
    /// `kubectl rollout undo` patches that annotation in place).
    async fn note_revision(&self, rev: i64) -> Result<(), Error> {
        let rev = rev.to_string();
        if rev == "0" || self.d.annotations().get(REVISION) == Some(&rev) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        );
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        api.patch(
            &self.d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    async fn annotate_revision(&self, rs: &ReplicaSet, rev: i64) -> Result<ReplicaSet, Error> {
        let patch = json!({"metadata": {
            "annotations": {REVISION: rev.to_string()},
            "resourceVersion": rs.resource_version(),
        }});
        Ok(self
            .api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?)
    }

    async fn create(&self, hash: &str, replicas: i32, rev: i64) -> Result<ReplicaSet, Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.into());
        let labels = meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.into());
        let total = spec.replicas.unwrap_or(1);
        let (surge, _) = surge_and_unavailable(self.d, total);
        let mut annotations = self.d.annotations().clone();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        annotations.insert(REVISION.into(), rev.to_string());
        annotations.insert(DESIRED.into(), total.to_string());
        annotations.insert(MAX_REPLICAS.into(), (total + surge).to_string());
        let name = format!("{}-{hash}", self.d.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                labels,
                annotations: Some(annotations),
                owner_references: Some(vec![pods::controller_ref(self.d)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(rs) => {
                let msg = format!("Scaled up replica set {name} from 0 to {replicas}");
                self.ctx
                    .recorder
                    .record(self.d, EventType::Normal, "ScalingReplicaSet", &msg)
                    .await;
                Ok(rs)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // A namesake with another template: count the collision so
                // the next hash differs (upstream's collisionCount).
                let api: Api<Deployment> = Api::namespaced(
                    self.ctx.client.clone(),
                    &self.d.namespace().unwrap_or_default(),
                );
                let count = self
                    .d
                    .status
                    .as_ref()
                    .and_then(|s| s.collision_count)
                    .unwrap_or(0)
                    + 1;
                let patch = json!({"status": {"collisionCount": count}});
                api.patch_status(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
                Err(kube::Error::Api(e).into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// Sets a condition, keeping the transition time when the status holds
/// and the update time too when nothing changed.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason && old.message == c.message {
                c.last_update_time = old.last_update_time.clone();
            }
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// Writes the status; returns when to look again (progress deadline).
async fn update_status(
    d: &Deployment,
    ctx: &Ctx,
    ns: &str,
    sets: &[ReplicaSet],
    new: Option<usize>,
    created: Option<&str>,
) -> Result<Option<Duration>, Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let old = d.status.clone().unwrap_or_default();
    let total_spec: i32 = sets.iter().map(spec_replicas).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sets.iter().map(|rs| st(rs).replicas).sum()),
        updated_replicas: Some(new.map_or(0, |i| st(&sets[i]).replicas)),
        ready_replicas: Some(
            sets.iter()
                .map(|rs| st(rs).ready_replicas.unwrap_or(0))
                .sum(),
        ),
        available_replicas: Some(sets.iter().map(available).sum()),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..DeploymentStatus::default()
    };
    let available_now = status.available_replicas.unwrap_or(0);
    status.unavailable_replicas = Some((total_spec - available_now).max(0));
    let now = Time(Timestamp::now());
    let mut conds = status.conditions.take().unwrap_or_default();
    let (_, unavailable) = surge_and_unavailable(d, replicas);
    set_condition(
        &mut conds,
        if available_now >= replicas - unavailable {
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &now,
            )
        } else {
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &now,
            )
        },
    );
    let mut requeue = None;
    let new_name = new.map(|i| sets[i].name_any()).unwrap_or_default();
    let deadline = spec.progress_deadline_seconds.unwrap_or(600);
    let updated = status.updated_replicas.unwrap_or(0);
    let complete = new.is_some()
        && updated == replicas
        && available_now >= replicas
        && status.replicas == Some(replicas);
    if spec.paused == Some(true) {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                &now,
            ),
        );
    } else if complete {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                &now,
            ),
        );
    } else if let Some(name) = created {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                &now,
            ),
        );
    } else {
        let moved = status.updated_replicas > old.updated_replicas
            || status.ready_replicas > old.ready_replicas
            || status.available_replicas > old.available_replicas
            || status.replicas < old.replicas
            || conds.iter().all(|c| c.type_ != "Progressing")
            || conds.iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")
            });
        let since = conds
            .iter()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0.as_second());
        let timed_out =
            !moved && since.is_some_and(|s| Timestamp::now().as_second() - s > i64::from(deadline));
        if timed_out {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                    &now,
                ),
            );
        } else if moved {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{new_name}\" is progressing."),
                    &now,
                ),
            );
        }
        let left = since.map_or(i64::from(deadline), |s| {
            i64::from(deadline) - (Timestamp::now().as_second() - s)
        });
        if !timed_out {
            requeue = Some(Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1)));
        }
    }
    status.conditions = Some(conds);
    if status != old {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({"status": status});
        match api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue)
}

/// Runs the Deployment controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let deployments = informers.get::<Deployment>();
    let sets = informers.get::<ReplicaSet>();
    deployments.ready().await;
    sets.ready().await;
    let store = deployments.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        sets: sets.store(),
        recorder: Recorder::new(client, "deployment-controller"),
    });
    let lookup = store.clone();
    Controller::for_shared_stream(deployments.changes(), store)
        .watches_shared_stream(sets.changes(), move |rs: Arc<ReplicaSet>| {
            pods::owners_of(&lookup, &rs.metadata, |d: &Deployment| {
                d.spec
                    .as_ref()
                    .is_some_and(|s| pods::selects(&s.selector, rs.metadata.labels.as_ref()))
            })
        })
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_upstream() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(Some(&pct), 10, true, 0), 3);
        assert_eq!(scaled(Some(&pct), 10, false, 0), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(4)), 10, true, 0), 4);
        assert_eq!(scaled(None, 1, true, 25), 1);
        assert_eq!(scaled(None, 1, false, 25), 0);
    }

    #[test]
    fn hash_is_stable_and_safe() {
        let t = PodTemplateSpec::default();
        let a = template_hash(&t, None);
        assert_eq!(a, template_hash(&t, None));
        assert_ne!(a, template_hash(&t, Some(1)));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
