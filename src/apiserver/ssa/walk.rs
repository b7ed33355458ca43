//! Walks over objects and their types: the field set an object (or an
//! apply configuration) sets, what changed between two versions, the merge
//! of an apply configuration into a live object, and the removal of paths.

use serde_json::Value;

use super::fieldset::{self, Set};
use super::types::{ListKind, TyRef};

/// Which part of an object a write owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything but status when status is a subresource.
    Main { status_apart: bool },
    /// Only status.
    Status,
}

/// Where in the object a walk is: the top and metadata hold fields no
/// manager owns.
#[derive(Clone, Copy)]
enum Level {
    Root(Scope),
    Meta,
    Inner,
}

impl Level {
    fn skips(self, key: &str) -> bool {
        match self {
            Level::Root(scope) => {
                matches!(key, "apiVersion" | "kind")
                    || match scope {
                        Scope::Main { status_apart } => status_apart && key == "status",
                        Scope::Status => key != "status",
                    }
            }
            Level::Meta => matches!(
                key,
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "deletionTimestamp"
                    | "deletionGracePeriodSeconds"
                    | "managedFields"
                    | "selfLink"
            ),
            Level::Inner => false,
        }
    }

    fn below(self, key: &str) -> Level {
        match self {
            Level::Root(_) if key == "metadata" => Level::Meta,
            _ => Level::Inner,
        }
    }
}

/// The fields a value sets, as an apply configuration owns them: leaves,
/// and list items. List-map keys missing from an item are taken from the
/// matching item of `resolve` (the object after defaulting), so the set
/// names items the way the stored object does.
pub fn to_set(v: &Value, ty: TyRef, scope: Scope, resolve: Option<&Value>) -> Set {
    let mut out = Set::default();
    walk_set(v, ty, Level::Root(scope), resolve, &mut out);
    out
}

fn walk_set(v: &Value, ty: TyRef, level: Level, resolve: Option<&Value>, out: &mut Set) {
    match v {
        Value::Object(m) if ty.granular_object() && !m.is_empty() => {
            for (k, child) in m {
                if level.skips(k) {
                    continue;
                }
                let mut sub = Set::default();
                let r = resolve.and_then(|r| r.get(k.as_str()));
                walk_set(child, ty.field(k), level.below(k), r, &mut sub);
                out.put(fieldset::field(k), sub);
            }
        }
        Value::Array(items) if !items.is_empty() && *ty.list_kind() != ListKind::Atomic => {
            for item in items {
                match ty.list_kind() {
                    ListKind::Set => out.put(fieldset::value(item), Set::leaf()),
                    ListKind::Map(keys) => {
                        let live = resolve.and_then(|r| find_item(r, item, keys));
                        let mut sub = Set::leaf();
                        walk_set(item, ty.item(), Level::Inner, live, &mut sub);
                        out.put(fieldset::key(live.unwrap_or(item), keys), sub);
                    }
                    ListKind::Atomic => {}
                }
            }
        }
        _ => out.member = true,
    }
}

/// The item of list `list` with the key fields `item` has.
fn find_item<'a>(list: &'a Value, item: &Value, keys: &[String]) -> Option<&'a Value> {
    list.as_array()?.iter().find(|l| same_key(l, item, keys))
}

fn same_key(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter()
        .all(|k| match (a.get(k.as_str()), b.get(k.as_str())) {
            (Some(x), Some(y)) => x == y,
            // A key field left to its default matches the defaulted one.
            (None, _) | (_, None) => true,
        })
}

/// What an update changed: the paths it set or changed (with newly added
/// maps, lists and items as members, like upstream's Update entries) and
/// the paths it removed.
pub fn changes(old: Option<&Value>, new: &Value, ty: TyRef, scope: Scope) -> (Set, Set) {
    let (mut changed, mut removed) = (Set::default(), Set::default());
    walk_changes(
        old,
        new,
        ty,
        Level::Root(scope),
        true,
        &mut changed,
        &mut removed,
    );
    changed.member = false;
    removed.member = false;
    (changed, removed)
}

fn walk_changes(
    old: Option<&Value>,
    new: &Value,
    ty: TyRef,
    level: Level,
    top: bool,
    changed: &mut Set,
    removed: &mut Set,
) {
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(m) if ty.granular_object() && !m.is_empty() => {
            let old_map = old.and_then(Value::as_object);
            if old_map.is_none() && !top && ty.is_map() {
                changed.member = true;
            }
            for (k, child) in m {
                if level.skips(k) {
                    continue;
                }
                let (mut c, mut r) = (Set::default(), Set::default());
                let o = old_map.and_then(|o| o.get(k));
                walk_changes(o, child, ty.field(k), level.below(k), false, &mut c, &mut r);
                changed.put(fieldset::field(k), c);
                removed.put(fieldset::field(k), r);
            }
            if let Some(o) = old_map {
                for k in o.keys() {
                    if !m.contains_key(k) && !level.skips(k) {
                        removed.put(fieldset::field(k), Set::leaf());
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() && *ty.list_kind() != ListKind::Atomic => {
            let old_items = old.and_then(Value::as_array);
            if old_items.is_none() {
                changed.member = true;
            }
            let olds: &[Value] = old_items.map(Vec::as_slice).unwrap_or(&[]);
            match ty.list_kind() {
                ListKind::Set => {
                    for item in items {
                        if !olds.contains(item) {
                            changed.put(fieldset::value(item), Set::leaf());
                        }
                    }
                    for o in olds {
                        if !items.contains(o) {
                            removed.put(fieldset::value(o), Set::leaf());
                        }
                    }
                }
                ListKind::Map(keys) => {
                    for item in items {
                        let element = fieldset::key(item, keys);
                        let o = olds.iter().find(|o| fieldset::key(o, keys) == element);
                        let (mut c, mut r) = (Set::default(), Set::default());
                        walk_changes(o, item, ty.item(), Level::Inner, false, &mut c, &mut r);
                        if o.is_none() {
                            c.member = true;
                        }
                        changed.put(element.clone(), c);
                        removed.put(element, r);
                    }
                    for o in olds {
                        let element = fieldset::key(o, keys);
                        if !items.iter().any(|i| fieldset::key(i, keys) == element) {
                            removed.put(element, Set::leaf());
                        }
                    }
                }
                ListKind::Atomic => {}
            }
        }
        _ => changed.member = true,
    }
}

/// An apply configuration merged into the live object: granular objects
/// key by key, list maps item by item, sets as a union, the rest replaced.
/// Items keep the configuration's order; live-only items follow.
pub fn merge(live: &Value, config: &Value, ty: TyRef) -> Value {
    let mut out = live.clone();
    merge_into(&mut out, config, ty);
    out
}

/// `merge` in place: the live object is copied once, not at every level.
fn merge_into(live: &mut Value, config: &Value, ty: TyRef) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if ty.granular_object() => {
            for (k, cv) in c {
                match l.get_mut(k) {
                    Some(lv) => merge_into(lv, cv, ty.field(k)),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => match ty.list_kind() {
            ListKind::Atomic => *l = c.clone(),
            ListKind::Set => {
                let live_only: Vec<Value> = std::mem::take(l)
                    .into_iter()
                    .filter(|v| !c.contains(v))
                    .collect();
                *l = c.clone();
                l.extend(live_only);
            }
            ListKind::Map(keys) => {
                let old = std::mem::take(l);
                *l = c
                    .iter()
                    .map(|ci| match old.iter().find(|li| same_key(li, ci, keys)) {
                        Some(li) => {
                            let mut item = li.clone();
                            merge_into(&mut item, ci, ty.item());
                            item
                        }
                        None => ci.clone(),
                    })
                    .collect();
                l.extend(
                    old.into_iter()
                        .filter(|li| !c.iter().any(|ci| same_key(li, ci, keys))),
                );
            }
        },
        (live, _) => *live = config.clone(),
    }
}

/// Remove the members of `gone` from an object, except that a path under
/// which `keep` still holds something is not removed whole: only what
/// `gone` lists below it is.
pub fn remove(obj: &mut Value, gone: &Set, keep: &Set, ty: TyRef) {
    let empty = Set::default();
    let whole = |element: &String, sub: &Set| {
        sub.member
            && keep
                .children
                .get(element)
                .is_none_or(|k| k.children.is_empty())
    };
    match obj {
        Value::Object(m) => {
            for (element, sub) in &gone.children {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                if whole(element, sub) {
                    m.remove(name);
                } else if let Some(child) = m.get_mut(name) {
                    let k = keep.children.get(element).unwrap_or(&empty);
                    remove(child, sub, k, ty.field(name));
                }
            }
        }
        Value::Array(items) => {
            let kind = ty.list_kind().clone();
            for (element, sub) in &gone.children {
                let matches = |v: &Value| match &kind {
                    ListKind::Map(keys) => fieldset::key(v, keys) == *element,
                    _ => fieldset::value(v) == *element,
                };
                if whole(element, sub) {
                    items.retain(|v| !matches(v));
                } else if let Some(item) = items.iter_mut().find(|v| matches(v)) {
                    let k = keep.children.get(element).unwrap_or(&empty);
                    remove(item, sub, k, ty.item());
                }
            }
        }
        _ => {}
    }
}
