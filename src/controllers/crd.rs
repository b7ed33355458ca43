//! CustomResourceDefinition lifecycle, as upstream's naming, establishing
//! and finalizing controllers: accept the requested names unless another
//! kind in the group holds them (NamesAccepted, Established), and once a
//! CRD is deleted, remove its objects before releasing it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use kube::Client;
use serde_json::{json, Value};

use super::retry::{self, Error};
use crate::api::crd::{condition_true, set_condition, CLEANUP_FINALIZER};
use crate::api::registry;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn texts(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Names other kinds of the group already hold: resource names (plurals,
/// singulars, short names) and kind names (kinds, list kinds).
#[derive(Default)]
struct Used {
    resources: Vec<String>,
    kinds: Vec<String>,
}

impl Used {
    fn of_group(group: &str, name: &str, all: &[Value]) -> Used {
        let mut used = Used::default();
        for other in all {
            if text(other, "/spec/group") != group || text(other, "/metadata/name") == name {
                continue;
            }
            let n = other
                .pointer("/status/acceptedNames")
                .cloned()
                .unwrap_or_default();
            used.resources.extend(
                [text(&n, "/plural"), text(&n, "/singular")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            used.resources.extend(texts(&n, "/shortNames"));
            used.kinds.extend(
                [text(&n, "/kind"), text(&n, "/listKind")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        for r in registry::RESOURCES.iter().filter(|r| r.group == group) {
            used.resources.push(r.plural.to_string());
            used.resources.push(r.singular());
            used.resources
                .extend(r.short_names.iter().map(|s| s.to_string()));
            used.kinds.push(r.kind.to_string());
            used.kinds.push(r.list_kind());
        }
        used
    }
}

/// Upstream's equalToAcceptedOrFresh.
fn check(requested: &str, accepted: &str, used: &[String]) -> Result<(), String> {
    if requested == accepted || !used.iter().any(|u| u == requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// The names to accept and, if some could not be, why (reason, message).
fn accept_names(crd: &Value, used: &Used) -> (Value, Option<(&'static str, String)>) {
    let req = crd.pointer("/spec/names").cloned().unwrap_or_default();
    let acc = crd
        .pointer("/status/acceptedNames")
        .cloned()
        .unwrap_or(json!({}));
    let mut names = acc.clone();
    let mut problem: Option<(&'static str, String)> = None;
    let mut take = |field: &str, used: &[String], reason: &'static str| {
        let (r, a) = (text(&req, field), text(&acc, field));
        match check(r, a, used) {
            Ok(()) => names[&field[1..]] = json!(r),
            Err(e) => problem = Some((reason, e)),
        }
    };
    take("/plural", &used.resources, "PluralConflict");
    take("/singular", &used.resources, "SingularConflict");
    take("/kind", &used.kinds, "KindConflict");
    take("/listKind", &used.kinds, "ListKindConflict");
    let (req_short, acc_short) = (texts(&req, "/shortNames"), texts(&acc, "/shortNames"));
    if req_short != acc_short {
        let taken: Vec<String> = req_short
            .iter()
            .filter(|s| !acc_short.contains(s))
            .filter_map(|s| check(s, "", &used.resources).err())
            .collect();
        if taken.is_empty() {
            names["shortNames"] = json!(req_short);
        } else {
            problem = Some(("ShortNamesConflict", taken.join(", ")));
        }
    }
    names["categories"] = req.get("categories").cloned().unwrap_or(json!([]));
    if let Some(o) = names.as_object_mut() {
        // plural and kind are required fields of the names type.
        o.retain(|k, v| {
            matches!(k.as_str(), "plural" | "kind")
                || !(v.is_null() || v == &json!([]) || v == &json!(""))
        });
        for k in ["plural", "kind"] {
            o.entry(k).or_insert(json!(""));
        }
    }
    (names, problem)
}

async fn reconcile_names(
    crd: &Value,
    api: &Api<CustomResourceDefinition>,
) -> Result<Action, Error> {
    let name = text(crd, "/metadata/name");
    let all: Vec<Value> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let used = Used::of_group(text(crd, "/spec/group"), name, &all);
    let (names, problem) = accept_names(crd, &used);
    let mut desired = crd.clone();
    let mut changed = desired.pointer("/status/acceptedNames") != Some(&names);
    desired["status"]["acceptedNames"] = names;
    let accepted = problem.is_none();
    changed |= match &problem {
        None => set_condition(
            &mut desired,
            "NamesAccepted",
            true,
            "NoConflicts",
            "no conflicts found",
        ),
        Some((reason, message)) => {
            set_condition(&mut desired, "NamesAccepted", false, reason, message)
        }
    };
    // One server: nothing to wait for between accepting and serving names.
    if accepted {
        changed |= set_condition(
            &mut desired,
            "Established",
            true,
            "InitialNamesAccepted",
            "the initial names have been accepted",
        );
    } else if !condition_true(crd, "Established") {
        changed |= set_condition(
            &mut desired,
            "Established",
            false,
            "NotAccepted",
            "not all names are accepted",
        );
    }
    if changed {
        let patch = json!({ "status": {
            "acceptedNames": desired["status"]["acceptedNames"],
            "conditions": desired["status"]["conditions"],
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(crd = name, accepted, "CRD names reconciled");
    }
    Ok(Action::await_change())
}

/// The API resource of a CRD's objects, at its first served version.
fn objects_resource(crd: &Value) -> Option<ApiResource> {
    let group = text(crd, "/spec/group");
    let version = crd
        .pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v["served"] == true)
        .map(|v| text(v, "/name"))?;
    let (plural, kind) = (
        text(crd, "/status/acceptedNames/plural"),
        text(crd, "/status/acceptedNames/kind"),
    );
    if plural.is_empty() || kind.is_empty() {
        return None;
    }
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    })
}

/// Delete every object of the CRD; true once none is left.
async fn delete_objects(client: &Client, ar: &ApiResource) -> Result<bool, Error> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let items = all.list(&ListParams::default()).await?.items;
    for item in &items {
        let Some(name) = item.metadata.name.as_deref() else {
            continue;
        };
        if item.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<DynamicObject> = match item.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        };
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(items.is_empty())
}

async fn finalize(
    crd: &Value,
    api: &Api<CustomResourceDefinition>,
    client: &Client,
) -> Result<Action, Error> {
    let name = text(crd, "/metadata/name");
    let mut desired = crd.clone();
    match objects_resource(crd).filter(|_| condition_true(crd, "Established")) {
        Some(ar) => {
            if !delete_objects(client, &ar).await? {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            set_condition(
                &mut desired,
                "Terminating",
                false,
                "InstanceDeletionCompleted",
                "removed all instances",
            );
        }
        None => {
            set_condition(
                &mut desired,
                "Terminating",
                false,
                "NeverEstablished",
                "resource was never established",
            );
        }
    }
    let status = json!({ "status": { "conditions": desired["status"]["conditions"] } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let finalizers: Vec<String> = texts(crd, "/metadata/finalizers")
        .into_iter()
        .filter(|f| f != CLEANUP_FINALIZER)
        .collect();
    let release = json!({ "metadata": { "finalizers": finalizers } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&release))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(crd = name, "CRD objects removed; definition released");
    Ok(Action::await_change())
}

async fn reconcile(
    crd: Arc<CustomResourceDefinition>,
    client: Arc<Client>,
) -> Result<Action, Error> {
    let api: Api<CustomResourceDefinition> = Api::all((*client).clone());
    let value = serde_json::to_value(&*crd)?;
    if crd.metadata.deletion_timestamp.is_some() {
        if texts(&value, "/metadata/finalizers")
            .iter()
            .any(|f| f == CLEANUP_FINALIZER)
        {
            return finalize(&value, &api, &client).await;
        }
        return Ok(Action::await_change());
    }
    reconcile_names(&value, &api).await
}

pub async fn run(client: Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // One at a time: accepting names reads what the others accepted.
    Controller::new(crds, watcher::Config::default())
        .with_config(Config::default().concurrency(1))
        .run(reconcile, retry::soon, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, singular: &str, kind: &str, short: &[&str]) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {"group": "example.com", "names": {"plural": plural, "singular": singular,
                "kind": kind, "listKind": format!("{kind}List"), "shortNames": short}},
            "status": {"acceptedNames": {"plural": plural, "singular": singular, "kind": kind,
                "listKind": format!("{kind}List"), "shortNames": short}},
        })
    }

    #[test]
    fn names_held_elsewhere_are_refused() {
        let widgets = crd(
            "widgets.example.com",
            "widgets",
            "widget",
            "Widget",
            &["wd"],
        );
        let mut fresh = crd("wd.example.com", "wd", "wdthing", "Gadget", &[]);
        fresh["status"] = json!({});
        let used = Used::of_group(
            "example.com",
            "wd.example.com",
            &[widgets.clone(), fresh.clone()],
        );
        let (names, problem) = accept_names(&fresh, &used);
        assert_eq!(
            problem,
            Some(("PluralConflict", "\"wd\" is already in use".into()))
        );
        assert_eq!(names["plural"], "");
        assert_eq!(names["kind"], "Gadget");

        let mut ok = crd(
            "gadgets.example.com",
            "gadgets",
            "gadget",
            "Gadget",
            &["gd"],
        );
        ok["status"] = json!({});
        let used = Used::of_group("example.com", "gadgets.example.com", &[widgets]);
        let (names, problem) = accept_names(&ok, &used);
        assert!(problem.is_none());
        assert_eq!(names["shortNames"], json!(["gd"]));
    }
}
