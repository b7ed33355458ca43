//! metadata.managedFields: who owns which fields, kept on every write
//! (Update entries) and decided by server-side apply (Apply entries).

use serde_json::{json, Map, Value};

use super::fieldset::Set;
use super::types::TyRef;
use super::walk::{self, Scope};
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};

pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

/// One managedFields entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: Set,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How upstream names the manager in conflict messages.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// An object's managedFields entries, decoded. An apply needs them twice
/// (to merge, then to settle ownership), so it decodes them once.
#[derive(Default)]
pub struct Managed(Vec<Entry>);

impl Managed {
    pub fn of(obj: Option<&Value>) -> Managed {
        Managed(decode(obj))
    }
}

fn decode(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
    list.iter()
        .map(|e| Entry {
            manager: s(e, "manager"),
            operation: s(e, "operation"),
            api_version: s(e, "apiVersion"),
            time: e["time"].as_str().map(String::from),
            subresource: s(e, "subresource"),
            set: Set::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Write entries into an object, in upstream's order, without empty ones.
fn encode(mut entries: Vec<Entry>, obj: &mut Value) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(t) = e.time {
                m.insert("time".into(), json!(t));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    let meta = object::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The manager of a write: `fieldManager`, else the User-Agent up to its
/// first `/`, as upstream derives it.
pub fn manager(field_manager: Option<&str>, headers: &http::HeaderMap) -> String {
    let name = match field_manager {
        Some(m) => m.to_string(),
        None => headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .unwrap_or_default(),
    };
    name.chars().take(128).collect()
}

/// Who is writing, and to which part of the object.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub ty: TyRef<'a>,
}

/// Record an ordinary write (create, update, non-apply patch): the writer
/// owns what it set or changed, and nobody owns what it removed. Entries
/// the client sent with the object replace the stored ones, as upstream
/// lets clients edit managedFields (kubectl's client-side to server-side
/// apply migration does).
pub fn record_update(w: &Writer, old: Option<&Value>, new: &mut Value) {
    let stored = old.and_then(|o| o.pointer("/metadata/managedFields"));
    let sent = w.scope != Scope::Status
        && new
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty())
        && stored != new.pointer("/metadata/managedFields");
    let (changed, removed) = walk::changes(old, new, w.ty, w.scope);
    if changed.is_empty() && removed.is_empty() {
        // Nothing of this writer's to record: keep the entries as they are
        // (the common case of a write that changes only status or nothing).
        if !sent {
            match stored {
                Some(m) => object::meta_mut(new).insert("managedFields".into(), m.clone()),
                None => object::meta_mut(new).remove("managedFields"),
            };
        }
        return;
    }
    let mut entries = decode(if sent { Some(&*new) } else { old });
    for e in entries.iter_mut() {
        if !e.is(w.manager, UPDATE, w.subresource) {
            e.set = e.set.difference(&changed);
            e.set.remove_subtrees(&removed);
        }
    }
    let own = own_entry(&mut entries, w, UPDATE);
    own.set.union(&changed);
    own.set.remove_subtrees(&removed);
    encode(entries, new);
}

fn own_entry<'e>(entries: &'e mut Vec<Entry>, w: &Writer, operation: &str) -> &'e mut Entry {
    let i = match entries
        .iter()
        .position(|e| e.is(w.manager, operation, w.subresource))
    {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: w.manager.to_string(),
                operation: operation.to_string(),
                api_version: String::new(),
                time: None,
                subresource: w.subresource.to_string(),
                set: Set::default(),
            });
            entries.len() - 1
        }
    };
    let e = &mut entries[i];
    e.api_version = w.api_version.to_string();
    e.time = Some(object::now_rfc3339());
    e
}

/// The object an apply configuration asks for, before defaulting: the
/// configuration merged into the live object, and the fields the applier
/// set last time but left out now removed, unless someone else owns them.
pub fn merge_apply(w: &Writer, live: &Value, managed: &Managed, config: &Value) -> Value {
    let entries = &managed.0;
    let mine = entries
        .iter()
        .find(|e| e.is(w.manager, APPLY, w.subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut others = Set::default();
    for e in entries
        .iter()
        .filter(|e| !e.is(w.manager, APPLY, w.subresource))
    {
        others.union(&e.set);
    }
    let mut keep = walk::to_set(config, w.ty, w.scope, Some(live));
    let dropped = mine.difference(&keep).difference(&others);
    keep.union(&others);
    let mut merged = walk::merge(live, config, w.ty);
    walk::remove(&mut merged, &dropped, &keep, w.ty);
    update_last_applied(w, live, config, &mut merged);
    merged
}

/// Decide ownership after an apply: fields the configuration changed that
/// another manager owns are conflicts (409) unless forced, in which case
/// the applier takes them over.
pub fn record_apply(
    w: &Writer,
    force: bool,
    config: &Value,
    live: Option<&Value>,
    managed: &Managed,
    new: &mut Value,
) -> ApiResult<()> {
    let mut entries = managed.0.clone();
    let config_set = walk::to_set(config, w.ty, w.scope, Some(new));
    let (changed, removed) = walk::changes(live, new, w.ty, w.scope);
    let changed_by_me = changed.intersection(&config_set);
    let clashes: Vec<(usize, Set)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is(w.manager, APPLY, w.subresource))
        .map(|(i, e)| (i, e.set.intersection(&changed_by_me)))
        .filter(|(_, clash)| !clash.is_empty())
        .collect();
    let force = force || migrating(w, live, &clashes, new);
    if !force && !clashes.is_empty() {
        let conflicts: Vec<(String, String)> = clashes
            .iter()
            .flat_map(|(i, clash)| {
                let who = entries[*i].describe();
                clash.paths().into_iter().map(move |p| (who.clone(), p))
            })
            .collect();
        return Err(conflict_error(&conflicts));
    }
    for (i, clash) in &clashes {
        entries[*i].set = entries[*i].set.difference(clash);
    }
    for e in entries.iter_mut() {
        e.set.remove_subtrees(&removed);
    }
    own_entry(&mut entries, w, APPLY).set = config_set;
    encode(entries, new);
    Ok(())
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kubectl's first server-side apply of an object it applied client-side
/// may take over what that configuration set (upstream's
/// lastAppliedManager): kubectl then moves the client-side entry over.
fn migrating(w: &Writer, live: Option<&Value>, clashes: &[(usize, Set)], new: &Value) -> bool {
    if w.manager != "kubectl" || clashes.is_empty() {
        return false;
    }
    let Some(last) = live
        .and_then(|l| l.pointer("/metadata/annotations"))
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return false;
    };
    let allowed = walk::to_set(&last, w.ty, w.scope, Some(new));
    clashes
        .iter()
        .all(|(_, clash)| clash.difference(&allowed).is_empty())
}

/// Keep the client-side apply annotation of an object kubectl now applies
/// server-side in step with what it applied, as upstream's
/// lastAppliedUpdater does, so a later client-side apply diffs correctly.
fn update_last_applied(w: &Writer, live: &Value, config: &Value, merged: &mut Value) {
    if w.manager != "kubectl"
        || live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .is_none()
    {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let text = applied.to_string();
    if let Some(a) = merged
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.into(), Value::String(text));
    }
}

/// Upstream's apply conflict Status: one cause per field.
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let message = if let [(who, path)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {who}: {path}")
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(w, _)| w).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in conflicts.iter().filter(|(w, _)| w == m) {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(who, path)| {
            json!({ "reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": path })
        })
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(json!({ "causes": causes }));
    e
}
