//! DaemonSet controller: one pod per eligible node (nodeSelector, node
//! affinity, taints, with the tolerations upstream adds to daemon pods),
//! each pinned to its node by node affinity on `metadata.name` and bound by
//! the default scheduler; RollingUpdate within maxUnavailable/maxSurge or
//! OnDelete, over ControllerRevisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use super::deployment::scaled;
use super::events::{EventType, Recorder};
use super::expectations::Expectations;
use super::informers::Informers;
use super::retry::{self, Error};
use super::{pods, revisions, writes};
use crate::scheduler::eligibility;

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    expectations: Expectations,
}

/// Taints every daemon pod tolerates (upstream's
/// AddOrUpdateDaemonPodTolerations): it must outlive a node's trouble.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// The template with the daemon tolerations added.
fn daemon_template(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    let spec = t.spec.get_or_insert_with(Default::default);
    let host_network = spec.host_network.unwrap_or(false);
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    let extra = host_network.then_some(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    for &(key, effect) in DAEMON_TOLERATIONS.iter().chain(extra.iter()) {
        if !tols
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            tols.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Toleration::default()
            });
        }
    }
    t
}

/// Pins a pod to a node the way upstream ≥1.12 does: every required node
/// affinity term gets `metadata.name In [node]` as its field requirement,
/// so the default scheduler binds it there.
fn pin_to_node(pod: &mut Pod, node: &str) {
    let field = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.into()]),
    };
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = na
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields = Some(vec![field.clone()]);
    }
}

/// The node a daemon pod is for: where it is bound, else where its node
/// affinity pins it.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            let values = f.values.as_deref().unwrap_or_default();
            (f.key == "metadata.name" && f.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

fn failed(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

/// What a node should have: whether a new daemon pod may go there, and
/// whether one already there may stay (only NoExecute taints evict).
fn node_fit(template: &Arc<Pod>, node: &Arc<Node>) -> (bool, bool) {
    let run = eligibility::fits(template.clone(), node.clone(), &["NoSchedule", "NoExecute"]);
    let stay = run || eligibility::fits(template.clone(), node.clone(), &["NoExecute"]);
    (run, stay)
}

/// One node's daemon pods, the newest template's apart.
#[derive(Default)]
struct NodePods<'a> {
    new: Vec<&'a Pod>,
    old: Vec<&'a Pod>,
}

impl NodePods<'_> {
    fn current(&self) -> Option<&Pod> {
        self.new.first().or(self.old.first()).copied()
    }
}

/// What one sync does: pods to create (by node) and pods to delete.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    create: Vec<String>,
    delete: Vec<String>,
}

struct Budget {
    rolling: bool,
    max_unavailable: usize,
    max_surge: usize,
}

/// Upstream's daemon sync over nodes already judged eligible: `nodes` maps
/// each node to (may run, may stay); `available` says whether a pod
/// counts as available.
fn plan(
    nodes: &BTreeMap<String, (bool, bool)>,
    by_node: &HashMap<String, NodePods>,
    budget: &Budget,
    available: impl Fn(&Pod) -> bool,
) -> Plan {
    let mut out = Plan::default();
    let empty = NodePods::default();
    let mut only_old = Vec::new();
    let mut unavailable = 0;
    let mut surging = 0;
    for (node, &(run, stay)) in nodes {
        let here = by_node.get(node).unwrap_or(&empty);
        if !stay {
            out.delete
                .extend(here.new.iter().chain(&here.old).map(|p| p.name_any()));
            continue;
        }
        // Duplicates go, the oldest of each kind stays.
        out.delete.extend(
            here.new
                .iter()
                .skip(1)
                .chain(here.old.iter().skip(1))
                .map(|p| p.name_any()),
        );
        match (here.new.first(), here.old.first()) {
            (None, None) if run => {
                out.create.push(node.clone());
                unavailable += 1;
            }
            (None, None) => {}
            (Some(new), Some(old)) => {
                if budget.max_surge == 0 || available(new) {
                    out.delete.push(old.name_any());
                } else {
                    surging += 1;
                }
                if !available(new) {
                    unavailable += 1;
                }
            }
            (Some(p), None) | (None, Some(p)) => {
                if !available(p) {
                    unavailable += 1;
                }
                if here.new.is_empty() {
                    only_old.push((node, *p));
                }
            }
        }
    }
    if !budget.rolling {
        return out;
    }
    for (node, old) in only_old {
        if !available(old) {
            // Replacing a pod that is down costs no availability.
            out.delete.push(old.name_any());
        } else if budget.max_surge > 0 {
            if surging < budget.max_surge {
                out.create.push(node.clone());
                surging += 1;
            }
        } else if unavailable < budget.max_unavailable {
            out.delete.push(old.name_any());
            unavailable += 1;
        }
    }
    out
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    tracing::debug!(namespace = %ns, name = %ds.name_any(), "syncing daemonset");
    let settled = ctx.expectations.settled(&uid, &ns, &ctx.pods);
    let spec = ds.spec.clone().unwrap_or_default();
    let owned = pods::claim(&ctx.client, &ctx.pods, &*ds, |p| {
        pods::selects(&spec.selector, p.metadata.labels.as_ref())
    })
    .await?;
    let history = revisions::owned(&ctx.revisions, &*ds);
    let old_status = ds.status.clone().unwrap_or_default();
    let mut collisions = old_status.collision_count.unwrap_or(0);
    let update =
        revisions::ensure(&ctx.client, &*ds, &spec.template, &history, &mut collisions).await?;
    let hash = update
        .labels()
        .get(revisions::HASH_LABEL)
        .cloned()
        .unwrap_or_default();
    let template = daemon_template(&spec.template);
    let probe = Arc::new(pods::from_template(
        &template,
        pods::controller_ref(&*ds),
        "",
    ));
    let nodes: BTreeMap<String, (bool, bool)> = ctx
        .nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), node_fit(&probe, n)))
        .collect();

    let mut by_node: HashMap<String, NodePods> = HashMap::new();
    let mut orphaned = Vec::new();
    let mut failures = Vec::new();
    for pod in owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        match node_of(pod) {
            Some(n) if nodes.contains_key(&n) => {
                if failed(pod) {
                    failures.push(pod.name_any());
                    continue;
                }
                let entry = by_node.entry(n).or_default();
                if pod.labels().get(revisions::HASH_LABEL) == Some(&hash) {
                    entry.new.push(pod);
                } else {
                    entry.old.push(pod);
                }
            }
            // Its node is gone: no kubelet will finish it.
            _ => orphaned.push(pod.name_any()),
        }
    }
    for pods in by_node.values_mut() {
        pods.new
            .sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        pods.old
            .sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    }
    let desired = i32::try_from(nodes.values().filter(|(run, _)| *run).count()).unwrap_or(0);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let ru = strategy.rolling_update.unwrap_or_default();
    let max_surge = scaled(ru.max_surge.as_ref(), desired, true, 0);
    let mut max_unavailable = scaled(ru.max_unavailable.as_ref(), desired, true, 0);
    if max_surge <= 0 && max_unavailable <= 0 {
        max_unavailable = 1;
    }
    let budget = Budget {
        rolling: strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate",
        max_unavailable: usize::try_from(max_unavailable).unwrap_or(1),
        max_surge: usize::try_from(max_surge).unwrap_or(0),
    };
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let available = |p: &Pod| pods::availability(p, min_ready, now).0;
    if settled && ds.metadata.deletion_timestamp.is_none() {
        let mut plan = plan(&nodes, &by_node, &budget, available);
        plan.delete.extend(failures);
        apply(&ds, &ctx, &ns, &plan, &orphaned, (&template, &hash)).await?;
    }
    let requeue = update_status(&ds, &ctx, &nodes, &by_node, &hash, collisions, min_ready).await?;
    let live: HashSet<String> = [update.name_any()].into();
    let keep = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let in_use: HashSet<&String> = owned
        .iter()
        .filter_map(|p| p.labels().get(revisions::HASH_LABEL))
        .collect();
    let history: Vec<_> = revisions::owned(&ctx.revisions, &*ds)
        .into_iter()
        .filter(|r| {
            r.labels()
                .get(revisions::HASH_LABEL)
                .is_none_or(|h| !in_use.contains(h))
        })
        .collect();
    revisions::truncate(&ctx.client, &history, &live, keep).await?;
    Ok(match requeue {
        Some(secs) => Action::requeue(Duration::from_secs(secs.max(1) as u64)),
        None if !settled => Action::requeue(Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

async fn apply(
    ds: &DaemonSet,
    ctx: &Ctx,
    ns: &str,
    plan: &Plan,
    orphaned: &[String],
    (template, hash): (&PodTemplateSpec, &str),
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut created = HashSet::new();
    let mut deleted = HashSet::new();
    for node in &plan.create {
        let mut pod = pods::from_template(
            template,
            pods::controller_ref(ds),
            &format!("{}-", ds.name_any()),
        );
        pod.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(revisions::HASH_LABEL.into(), hash.into());
        pin_to_node(&mut pod, node);
        created.insert(pods::create(&api, &ctx.recorder, ds, &pod).await?);
    }
    let victims = plan
        .delete
        .iter()
        .map(|n| (n, None))
        .chain(orphaned.iter().map(|n| (n, Some(0))));
    for (name, grace) in victims {
        let Some(pod) = ctx.pods.get(&ObjectRef::new(name).within(ns)) else {
            continue;
        };
        let params = DeleteParams {
            grace_period_seconds: grace,
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                deleted.insert(pod.uid().unwrap_or_default());
                ctx.recorder
                    .record(
                        ds,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.expectations
        .expect(&ds.uid().unwrap_or_default(), created, deleted);
    Ok(())
}

/// Writes the counts upstream keeps per node; returns when to look again
/// for a pod about to become available.
async fn update_status(
    ds: &DaemonSet,
    ctx: &Ctx,
    nodes: &BTreeMap<String, (bool, bool)>,
    by_node: &HashMap<String, NodePods<'_>>,
    hash: &str,
    collisions: i32,
    min_ready: i32,
) -> Result<Option<i64>, Error> {
    let now = Timestamp::now();
    let mut s = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: (collisions > 0).then_some(collisions),
        ..DaemonSetStatus::default()
    };
    let (mut available, mut updated) = (0, 0);
    let mut next = None::<i64>;
    for (node, &(run, _)) in nodes {
        let Some(pod) = by_node.get(node).and_then(NodePods::current) else {
            continue;
        };
        if !run {
            s.number_misscheduled += 1;
            continue;
        }
        s.current_number_scheduled += 1;
        if pods::is_ready(pod) {
            s.number_ready += 1;
        }
        match pods::availability(pod, min_ready, now) {
            (true, _) => available += 1,
            (false, Some(left)) => next = Some(next.map_or(left, |n| n.min(left))),
            (false, None) => {}
        }
        if pod.labels().get(revisions::HASH_LABEL).map(String::as_str) == Some(hash) {
            updated += 1;
        }
    }
    s.desired_number_scheduled =
        i32::try_from(nodes.values().filter(|(r, _)| *r).count()).unwrap_or(0);
    s.number_available = Some(available);
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    s.updated_number_scheduled = Some(updated);
    let mut old = ds.status.clone().unwrap_or_default();
    old.conditions = None;
    if old != s {
        writes::patch_status(&ctx.client, ds, &s).await?;
    }
    Ok(next)
}

/// Runs the DaemonSet controller until the process ends.
pub async fn run(informers: Informers) {
    let client = informers.client();
    let sets = informers.get::<DaemonSet>();
    let pod_informer = informers.get::<Pod>();
    let node_informer = informers.get::<Node>();
    let revs = informers.get::<ControllerRevision>();
    sets.ready().await;
    pod_informer.ready().await;
    node_informer.ready().await;
    revs.ready().await;
    let set_store = sets.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_informer.store(),
        nodes: node_informer.store(),
        revisions: revs.store(),
        recorder: Recorder::new(client, "daemonset-controller"),
        expectations: Expectations::default(),
    });
    let by_pod = set_store.clone();
    let by_node = set_store.clone();
    Controller::for_shared_stream(sets.changes(), set_store)
        .watches_shared_stream(pod_informer.changes(), move |pod: Arc<Pod>| {
            pods::owners_of(&by_pod, &pod.metadata, |s: &DaemonSet| {
                s.spec
                    .as_ref()
                    .is_some_and(|sp| pods::selects(&sp.selector, pod.metadata.labels.as_ref()))
            })
        })
        // Any node change may change where daemons run.
        .watches_shared_stream(node_informer.changes(), move |_node: Arc<Node>| {
            by_node
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(&**ds))
                .collect::<Vec<_>>()
        })
        .run(reconcile, retry::soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn nodes(n: usize) -> BTreeMap<String, (bool, bool)> {
        (0..n).map(|i| (format!("n{i}"), (true, true))).collect()
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let mut ns = nodes(3);
        ns.insert("n1".into(), (false, false));
        let (a, b, c) = (pod("a", true), pod("b", true), pod("c", true));
        let by_node = HashMap::from([
            (
                "n1".to_string(),
                NodePods {
                    new: vec![&a],
                    old: vec![],
                },
            ),
            (
                "n2".to_string(),
                NodePods {
                    new: vec![&b, &c],
                    old: vec![],
                },
            ),
        ]);
        let budget = Budget {
            rolling: true,
            max_unavailable: 1,
            max_surge: 0,
        };
        let p = plan(&ns, &by_node, &budget, pods::is_ready);
        assert_eq!(p.create, vec!["n0".to_string()]);
        assert_eq!(p.delete, vec!["a".to_string(), "c".to_string()]);
    }

    #[test]
    fn rolling_update_honours_its_bounds() {
        let ns = nodes(3);
        let olds = [pod("o0", true), pod("o1", true), pod("o2", true)];
        let by_node: HashMap<String, NodePods> = olds
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    format!("n{i}"),
                    NodePods {
                        new: vec![],
                        old: vec![p],
                    },
                )
            })
            .collect();
        let mut budget = Budget {
            rolling: true,
            max_unavailable: 2,
            max_surge: 0,
        };
        let p = plan(&ns, &by_node, &budget, pods::is_ready);
        assert_eq!(p.delete.len(), 2);
        assert!(p.create.is_empty());
        budget.max_surge = 1;
        let p = plan(&ns, &by_node, &budget, pods::is_ready);
        assert_eq!((p.create.len(), p.delete.len()), (1, 0));
        budget.rolling = false;
        assert_eq!(
            plan(&ns, &by_node, &budget, pods::is_ready),
            Plan::default()
        );
    }
}
