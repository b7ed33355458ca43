//! StatefulSet controller: pods `<set>-<ordinal>` with stable hostnames and
//! claims `<template>-<set>-<ordinal>`, created in order (OrderedReady, each
//! after its predecessors are Running and Ready) or all at once (Parallel),
//! removed from the highest ordinal down; RollingUpdate (from the highest
//! ordinal to the partition, maxUnavailable at a time) or OnDelete, over
//! ControllerRevisions.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::deployment::scaled;
use super::events::{EventType, Recorder};
use super::expectations::Expectations;
use super::informers::Informers;
use super::retry::{self, Error};
use super::{pods, revisions, writes};

const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    recorder: Recorder,
    expectations: Expectations,
}

/// The ordinal of a pod named `<set>-<n>`.
fn ordinal(set: &str, pod: &str) -> Option<i32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels().get(revisions::HASH_LABEL).map(String::as_str)
}

fn running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && pods::is_ready(pod)
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn claim_name(template: &PersistentVolumeClaim, set: &str, ord: i32) -> String {
    format!("{}-{set}-{ord}", template.name_any())
}

/// One pod of the set from a revision's template: stable name, hostname
/// and subdomain, and its claims in place of template volumes of the same
/// name.
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ord: i32) -> Pod {
    let name = format!("{}-{ord}", set.name_any());
    let mut pod = pods::from_template(template, pods::controller_ref(set), "");
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(revisions::HASH_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    let spec = set.spec.clone().unwrap_or_default();
    let pod_spec = pod.spec.get_or_insert_with(Default::default);
    pod_spec.hostname = Some(name);
    if !spec.service_name.as_deref().unwrap_or("").is_empty() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    for claim in spec.volume_claim_templates.iter().flatten() {
        let vols = pod_spec.volumes.get_or_insert_with(Vec::new);
        vols.retain(|v| v.name != claim.name_any());
        vols.push(Volume {
            name: claim.name_any(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(claim, &set.name_any(), ord),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    pod
}

fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// A reference that lets the collector remove a claim with its owner.
fn owning_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        controller: None,
        ..pods::controller_ref(owner)
    }
}

/// Creates `obj` for `set` with upstream's StatefulSet events: true when
/// created, false when it exists already (no event then, as upstream).
async fn create_recorded<T>(
    api: &Api<T>,
    ctx: &Ctx,
    set: &StatefulSet,
    obj: &T,
    created: &str,
    failed: impl FnOnce(&str) -> String,
) -> Result<bool, Error>
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => {
            ctx.recorder
                .record(set, EventType::Normal, "SuccessfulCreate", created)
                .await;
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => {
            let msg = writes::message(&e);
            ctx.recorder
                .record(set, EventType::Warning, "FailedCreate", &failed(&msg))
                .await;
            Err(e.into())
        }
    }
}

/// Creates the claims the pod of `ord` needs that do not exist yet.
async fn ensure_claims(set: &StatefulSet, ctx: &Ctx, ns: &str, ord: i32) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let spec = set.spec.clone().unwrap_or_default();
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    for template in spec.volume_claim_templates.iter().flatten() {
        let name = claim_name(template, &set.name_any(), ord);
        if ctx.claims.get(&ObjectRef::new(&name).within(ns)).is_some() {
            continue;
        }
        let mut claim = template.clone();
        claim.metadata.name = Some(name.clone());
        claim.metadata.namespace = Some(ns.into());
        claim.metadata.resource_version = None;
        claim.metadata.uid = None;
        claim.metadata.creation_timestamp = None;
        claim.status = None;
        let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(selector_labels.clone());
        if retention(set).0 {
            claim.metadata.owner_references = Some(vec![owning_ref(set)]);
        }
        let set_name = set.name_any();
        create_recorded(
            &api,
            ctx,
            set,
            &claim,
            &format!("create Claim {name} Pod {set_name}-{ord} in StatefulSet {set_name} success"),
            |msg| format!("create Claim {name} for Pod {set_name}-{ord} failed: {msg}"),
        )
        .await?;
    }
    Ok(())
}

/// Hands a condemned pod's claims to the pod (whenScaled: Delete), so the
/// collector removes them once the pod is gone.
async fn release_claims(set: &StatefulSet, ctx: &Ctx, pod: &Pod) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let Some(ord) = ordinal(&set.name_any(), &pod.name_any()) else {
        return Ok(());
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let templates = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    for template in &templates {
        let name = claim_name(template, &set.name_any(), ord);
        let Some(claim) = ctx.claims.get(&ObjectRef::new(&name).within(&ns)) else {
            continue;
        };
        let pod_uid = pod.uid().unwrap_or_default();
        if claim.owner_references().iter().any(|r| r.uid == pod_uid) {
            continue;
        }
        let mut refs = claim.owner_references().to_vec();
        refs.push(owning_ref(pod));
        let patch = json!({"metadata": {"ownerReferences": refs}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What one sync decided to do.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Ordinals to create, each with whether it takes the update revision.
    create: Vec<(i32, bool)>,
    /// Pod names to delete.
    delete: Vec<String>,
}

/// The set as the sync sees it: its pods by ordinal and its policies.
struct View<'a> {
    replicas: i32,
    parallel: bool,
    rolling: bool,
    partition: i32,
    max_unavailable: i32,
    update_revision: &'a str,
    /// Pods with an ordinal below replicas, by ordinal.
    slots: Vec<Option<&'a Pod>>,
    /// Pods at or above replicas, highest ordinal first.
    condemned: Vec<&'a Pod>,
}

/// Upstream's StatefulSet update algorithm over one view.
fn plan(v: &View) -> Plan {
    let mut out = Plan::default();
    let ordered = !v.parallel;
    for (ord, slot) in v.slots.iter().enumerate() {
        let ord = i32::try_from(ord).unwrap_or(i32::MAX);
        match slot {
            None => {
                // A pod below the partition is recreated at the current
                // revision during a partitioned rolling update.
                let at_update = !v.rolling || ord >= v.partition;
                out.create.push((ord, at_update));
                if ordered {
                    return out;
                }
            }
            Some(pod) if finished(pod) && pod.metadata.deletion_timestamp.is_none() => {
                out.delete.push(pod.name_any());
                if ordered {
                    return out;
                }
            }
            Some(pod) if ordered && !running_and_ready(pod) => return out,
            Some(_) => {}
        }
    }
    for pod in &v.condemned {
        if pod.metadata.deletion_timestamp.is_some() {
            if ordered {
                return out;
            }
            continue;
        }
        out.delete.push(pod.name_any());
        if ordered {
            return out;
        }
    }
    if !v.rolling {
        return out;
    }
    let mut unavailable = v
        .slots
        .iter()
        .filter(|s| {
            s.is_none_or(|p| p.metadata.deletion_timestamp.is_some() || !running_and_ready(p))
        })
        .count();
    let budget = usize::try_from(v.max_unavailable.max(1)).unwrap_or(1);
    for slot in v
        .slots
        .iter()
        .rev()
        .take(usize::try_from(v.replicas - v.partition.min(v.replicas)).unwrap_or(0))
    {
        let Some(pod) = slot else { continue };
        if revision_of(pod) == Some(v.update_revision) || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let counted = !running_and_ready(pod);
        if !counted && unavailable >= budget {
            break;
        }
        out.delete.push(pod.name_any());
        if !counted {
            unavailable += 1;
        }
    }
    out
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    tracing::debug!(namespace = %ns, %name, "syncing statefulset");
    let settled = ctx.expectations.settled(&uid, &ns, &ctx.pods);
    let spec = set.spec.clone().unwrap_or_default();
    let owned = pods::claim(&ctx.client, &ctx.pods, &*set, |p| {
        pods::selects(&spec.selector, p.metadata.labels.as_ref())
            && ordinal(&name, &p.name_any()).is_some()
    })
    .await?;
    let history = revisions::owned(&ctx.revisions, &*set);
    let old_status = set.status.clone().unwrap_or_default();
    let mut collisions = old_status.collision_count.unwrap_or(0);
    let update = revisions::ensure(
        &ctx.client,
        &*set,
        &spec.template,
        &history,
        &mut collisions,
    )
    .await?;
    let update_name = update.name_any();
    let current = history
        .iter()
        .find(|r| Some(r.name_any()) == old_status.current_revision)
        .map(|r| (**r).clone())
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();

    let replicas = spec.replicas.unwrap_or(1).max(0);
    let mut slots: Vec<Option<&Pod>> = vec![None; usize::try_from(replicas).unwrap_or(0)];
    let mut condemned = Vec::new();
    for pod in &owned {
        match ordinal(&name, &pod.name_any()) {
            Some(o) if o < replicas => slots[usize::try_from(o).unwrap_or(0)] = Some(pod),
            Some(o) => condemned.push((o, &**pod)),
            None => {}
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let ru = strategy.rolling_update.unwrap_or_default();
    let view = View {
        replicas,
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        rolling,
        partition: ru.partition.unwrap_or(0).max(0),
        max_unavailable: scaled(ru.max_unavailable.as_ref(), replicas, true, 0).max(1),
        update_revision: &update_name,
        slots,
        condemned: condemned.into_iter().map(|(_, p)| p).collect(),
    };
    if settled && set.metadata.deletion_timestamp.is_none() {
        let plan = plan(&view);
        apply(&set, &ctx, &ns, &plan, (&current, &update)).await?;
    }
    let requeue = update_status(
        &set,
        &ctx,
        &owned,
        (&current_name, &update_name),
        collisions,
    )
    .await?;
    let live: HashSet<String> = owned
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_string))
        .chain([current_name, update_name])
        .collect();
    let keep = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    revisions::truncate(
        &ctx.client,
        &revisions::owned(&ctx.revisions, &*set),
        &live,
        keep,
    )
    .await?;
    Ok(match requeue {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1) as u64)),
        None if !settled => Action::requeue(Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

async fn apply(
    set: &StatefulSet,
    ctx: &Ctx,
    ns: &str,
    plan: &Plan,
    (current, update): (&ControllerRevision, &ControllerRevision),
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut created = HashSet::new();
    let mut deleted = HashSet::new();
    for &(ord, at_update) in &plan.create {
        ensure_claims(set, ctx, ns, ord).await?;
        let rev = if at_update { update } else { current };
        let pod = new_pod(set, &revisions::template_of(rev), &rev.name_any(), ord);
        let pod_name = pod.name_any();
        let set_name = set.name_any();
        let made = create_recorded(
            &api,
            ctx,
            set,
            &pod,
            &format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
            |msg| format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {msg}"),
        )
        .await?;
        if made {
            created.insert(pod_name.clone());
        }
    }
    let scaled_delete = retention(set).1;
    let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    for pod_name in &plan.delete {
        let Some(pod) = ctx.pods.get(&ObjectRef::new(pod_name).within(ns)) else {
            continue;
        };
        let condemned = ordinal(&set.name_any(), pod_name).is_some_and(|o| o >= replicas);
        if scaled_delete && condemned {
            release_claims(set, ctx, &pod).await?;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(pod_name, &params).await {
            Ok(_) => {
                deleted.insert(pod.uid().unwrap_or_default());
                ctx.recorder
                    .record(
                        set,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!(
                            "delete Pod {pod_name} in StatefulSet {} successful",
                            set.name_any()
                        ),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.expectations
        .expect(&set.uid().unwrap_or_default(), created, deleted);
    Ok(())
}

/// Writes the counts and revisions; returns when to look again for a pod
/// about to become available.
async fn update_status(
    set: &StatefulSet,
    ctx: &Ctx,
    owned: &[Arc<Pod>],
    (current, update): (&str, &str),
    collisions: i32,
) -> Result<Option<i64>, Error> {
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: (collisions > 0).then_some(collisions),
        current_revision: Some(current.into()),
        update_revision: Some(update.into()),
        ..StatefulSetStatus::default()
    };
    let mut next = None::<i64>;
    let (mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0);
    for pod in owned {
        status.replicas += 1;
        if running_and_ready(pod) {
            ready += 1;
            match pods::availability(pod, min_ready, now) {
                (true, _) => available += 1,
                (false, Some(left)) => next = Some(next.map_or(left, |n| n.min(left))),
                (false, None) => {}
            }
        }
        if pod.metadata.deletion_timestamp.is_none() {
            if revision_of(pod) == Some(current) {
                cur += 1;
            }
            if revision_of(pod) == Some(update) {
                upd += 1;
            }
        }
    }
    // Every pod at the update revision and ready: the update is complete.
    if current != update
        && upd == status.replicas
        && ready == status.replicas
        && status.replicas == spec.replicas.unwrap_or(1)
    {
        status.current_revision = Some(update.into());
        cur = upd;
    }
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
    let mut old = set.status.clone().unwrap_or_default();
    old.conditions = None;
    if old != status {
        writes::patch_status(&ctx.client, set, &status).await?;
    }
    Ok(next)
}

/// Runs the StatefulSet controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let sets = informers.get::<StatefulSet>();
    let pod_informer = informers.get::<Pod>();
    let revs = informers.get::<ControllerRevision>();
    let claims = informers.get::<PersistentVolumeClaim>();
    sets.ready().await;
    pod_informer.ready().await;
    revs.ready().await;
    claims.ready().await;
    let set_store = sets.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        revisions: revs.store(),
        claims: claims.store(),
        recorder: Recorder::new(client, "statefulset-controller"),
        expectations: Expectations::default(),
    });
    let lookup = set_store.clone();
    Controller::for_shared_stream(sets.changes(), set_store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            pods::owners_of(&lookup, &pod.metadata, |s: &StatefulSet| {
                s.spec
                    .as_ref()
                    .is_some_and(|sp| pods::selects(&sp.selector, pod.metadata.labels.as_ref()))
            })
        })
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, rev: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {revisions::HASH_LABEL: rev}},
            "status": {
                "phase": if ready { "Running" } else { "Pending" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .unwrap()
    }

    fn view<'a>(slots: Vec<Option<&'a Pod>>, condemned: Vec<&'a Pod>) -> View<'a> {
        View {
            replicas: i32::try_from(slots.len()).unwrap(),
            parallel: false,
            rolling: true,
            partition: 0,
            max_unavailable: 1,
            update_revision: "new",
            slots,
            condemned,
        }
    }

    #[test]
    fn ordinals_are_exact() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-01"), None);
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web-"), None);
    }

    #[test]
    fn ordered_creation_waits_for_readiness() {
        let p0 = pod("web-0", "new", false);
        let v = view(vec![Some(&p0), None, None], vec![]);
        assert_eq!(plan(&v), Plan::default());
        let p0 = pod("web-0", "new", true);
        let v = view(vec![Some(&p0), None, None], vec![]);
        assert_eq!(plan(&v).create, vec![(1, true)]);
        let mut v = view(vec![Some(&p0), None, None], vec![]);
        v.parallel = true;
        assert_eq!(plan(&v).create, vec![(1, true), (2, true)]);
    }

    #[test]
    fn scale_down_goes_from_the_top_one_at_a_time() {
        let (a, b, c) = (
            pod("web-0", "new", true),
            pod("web-1", "new", true),
            pod("web-2", "new", true),
        );
        let v = view(vec![Some(&a)], vec![&c, &b]);
        assert_eq!(plan(&v).delete, vec!["web-2".to_string()]);
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let (a, b, c) = (
            pod("web-0", "old", true),
            pod("web-1", "old", true),
            pod("web-2", "old", true),
        );
        let mut v = view(vec![Some(&a), Some(&b), Some(&c)], vec![]);
        assert_eq!(plan(&v).delete, vec!["web-2".to_string()]);
        v.max_unavailable = 2;
        assert_eq!(
            plan(&v).delete,
            vec!["web-2".to_string(), "web-1".to_string()]
        );
        v.partition = 2;
        assert_eq!(plan(&v).delete, vec!["web-2".to_string()]);
        v.partition = 3;
        assert_eq!(plan(&v), Plan::default());
        // A missing pod below the partition comes back at the old revision.
        let mut v = view(vec![None, Some(&b), Some(&c)], vec![]);
        v.partition = 1;
        assert_eq!(plan(&v).create, vec![(0, false)]);
    }
}
