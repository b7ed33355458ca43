//! Strategic merge patch (`application/strategic-merge-patch+json`), after
//! upstream's k8s.io/apimachinery/pkg/util/strategicpatch, applied the way
//! the apiserver does (`MergeParallelList` and `IgnoreUnmatchedNulls` on).
//!
//! Maps merge recursively and `null` deletes a key. Lists whose field has
//! patch strategy `merge` merge: lists of maps by the field's merge key,
//! lists of primitives as a union; other lists are replaced. Directives:
//! `$patch: replace|delete` (on a map or a list element), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
//!
//! The patch strategies and merge keys come from the Go struct tags of the
//! API types, as data generated into `meta.rs` by scripts/gen-patch-meta.py.

#[rustfmt::skip]
mod meta;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// A message with patch metadata: its name and the fields (sorted by JSON
/// name) that carry a strategy or lead to messages that do.
pub struct PM(pub &'static str, pub &'static [PF]);

/// A field: JSON name, strategy flags, merge key ("" if none), and the
/// index in `meta::MESSAGES` of its (element) message, or `NONE`.
pub struct PF(pub &'static str, pub u8, pub &'static str, pub u16);

/// `patchStrategy:"merge"`.
pub const MERGE: u8 = 1;
/// `patchStrategy:"retainKeys"` (clients send `$retainKeys`; the server
/// honours the directive wherever it appears).
pub const RETAIN_KEYS: u8 = 2;
/// `patchStrategy:"replace"`: a map is replaced, not merged.
pub const REPLACE: u8 = 4;
/// The field is a `map<string, message>`: each value is that message.
pub const MAP_VALUES: u8 = 8;
/// No message with patch metadata.
pub const NONE: u16 = u16::MAX;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Patch metadata of a value: the message (type) it is an instance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    msg: u16,
    /// A map whose values are `msg` messages.
    map_values: bool,
}

/// What is known of one field.
#[derive(Clone, Copy)]
struct Field {
    strategy: u8,
    key: &'static str,
    meta: PatchMeta,
}

impl PatchMeta {
    /// No metadata: maps merge, lists are replaced.
    pub const EMPTY: PatchMeta = PatchMeta {
        msg: NONE,
        map_values: false,
    };

    /// The metadata of a built-in kind; None for kinds the server knows no
    /// Go type of (custom resources), which upstream rejects with 415 too.
    pub fn for_kind(api_version: &str, kind: &str) -> Option<PatchMeta> {
        meta::KINDS
            .binary_search_by(|(a, k, _)| (*a, *k).cmp(&(api_version, kind)))
            .ok()
            .map(|i| PatchMeta {
                msg: meta::KINDS[i].2,
                map_values: false,
            })
    }

    fn field(self, name: &str) -> Field {
        let none = Field {
            strategy: 0,
            key: "",
            meta: PatchMeta::EMPTY,
        };
        if self.msg == NONE {
            return none;
        }
        if self.map_values {
            return Field {
                meta: PatchMeta {
                    msg: self.msg,
                    map_values: false,
                },
                ..none
            };
        }
        let fields = meta::MESSAGES[self.msg as usize].1;
        match fields.binary_search_by(|f| f.0.cmp(name)) {
            Ok(i) => {
                let PF(_, flags, key, msg) = fields[i];
                Field {
                    strategy: flags,
                    key,
                    meta: PatchMeta {
                        msg,
                        map_values: flags & MAP_VALUES != 0,
                    },
                }
            }
            Err(_) => none,
        }
    }
}

/// Every field with a patch strategy, as (message, JSON name, strategy
/// flags, merge key): the OpenAPI documents publish these as
/// `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`, so
/// clients building patches see the same metadata the server merges with.
pub fn strategies() -> impl Iterator<Item = (&'static str, &'static str, u8, &'static str)> {
    meta::MESSAGES.iter().flat_map(|PM(message, fields)| {
        fields
            .iter()
            .filter(|f| f.1 & (MERGE | RETAIN_KEYS | REPLACE) != 0)
            .map(move |PF(field, flags, key, _)| (*message, *field, *flags, *key))
    })
}

/// Apply a strategic merge patch to an object.
pub fn strategic_merge(original: &Value, patch: &Value, meta: PatchMeta) -> Result<Value, String> {
    let (Value::Object(o), Value::Object(p)) = (original, patch) else {
        return Err("invalid JSON document".into());
    };
    merge_map(o.clone(), p.clone(), meta).map(Value::Object)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    meta: PatchMeta,
) -> Result<Map<String, Value>, String> {
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(d, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, meta)?;
    for (k, pv) in patch {
        if k.starts_with(SET_ORDER_PREFIX) {
            continue;
        }
        let (key, delete_list) = match k.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            Some(rest) => (rest.to_string(), true),
            None if k.starts_with("$deleteFromPrimitiveList") => {
                return Err("invalid patch format of primitive list".into())
            }
            None => (k, false),
        };
        if pv.is_null() {
            original.remove(&key);
            continue;
        }
        let field = meta.field(&key);
        let Some(ov) = original.get_mut(&key) else {
            if !delete_list {
                let v = new_value(pv, field)?;
                original.insert(key, v);
            }
            continue;
        };
        match (ov.take(), pv) {
            (Value::Object(o), Value::Object(p)) => {
                *ov = if field.strategy & REPLACE != 0 {
                    Value::Object(p)
                } else {
                    Value::Object(merge_map(o, p, field.meta)?)
                };
            }
            (Value::Array(o), Value::Array(p)) => {
                *ov = Value::Array(merge_list(o, p, field, delete_list)?);
            }
            (o, p) => *ov = if delete_list { o } else { p },
        }
    }
    Ok(original)
}

/// A patch value for a key the original lacks: the patch merged into
/// nothing, so that its nulls and directives do not end up in the object.
fn new_value(pv: Value, field: Field) -> Result<Value, String> {
    Ok(match pv {
        Value::Object(p) if field.strategy & REPLACE == 0 => {
            Value::Object(merge_map(Map::new(), p, field.meta)?)
        }
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, field, false)?),
        other => other,
    })
}

/// `mergeSliceHandler`: merge lists with the merge strategy, else replace.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Field,
    delete_list: bool,
) -> Result<Vec<Value>, String> {
    if field.strategy & MERGE == 0 {
        return Ok(patch);
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = element_kind_is_map(&original, &patch)?;
    let key = field.key;
    let (server_order, patch, merged) = if !is_map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| same(v, d)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| same(m, v)) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        if key.is_empty() {
            return Err("cannot merge lists without merge key".into());
        }
        let (original, patch) = special_elements(original, patch, key)?;
        let mut merged = original.clone();
        for p in &patch {
            let Value::Object(pm) = p else {
                return Err(format!("value for key {key} is not a map."));
            };
            let Some(kv) = pm.get(key) else {
                return Err(no_merge_key(p, key));
            };
            match find_by_key(&merged, key, kv) {
                Some(i) => {
                    let Value::Object(om) = merged[i].take() else {
                        unreachable!("find_by_key only matches maps")
                    };
                    merged[i] = Value::Object(merge_map(om, pm.clone(), field.meta)?);
                }
                None => merged.push(Value::Object(merge_map(
                    Map::new(),
                    pm.clone(),
                    field.meta,
                )?)),
            }
        }
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition(merged, &patch, key, is_map)?;
    normalize_order(patch_items, server_only, &patch, &server_order, key, is_map)
}

/// `mergeSliceWithSpecialElements`: apply `$patch: delete` elements to the
/// original, and `$patch: replace` (the patch replaces the list).
fn special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut rest = Vec::new();
    let mut replace = false;
    for v in patch {
        let Some(d) = v.get(DIRECTIVE) else {
            rest.push(v);
            continue;
        };
        match d.as_str() {
            Some("delete") => {
                let Some(kv) = v.get(key) else {
                    return Err(no_merge_key(&v, key));
                };
                while let Some(i) = find_by_key(&original, key, kv) {
                    original.remove(i);
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err("merging lists cannot yet be specified in the patch".into())
            }
            _ => return Err(bad_patch_type(d, v.as_object().unwrap_or(&Map::new()))),
        }
    }
    Ok(if replace {
        (rest, Vec::new())
    } else {
        (original, rest)
    })
}

/// `applyRetainKeysDirective`: clear the original's keys that are not
/// listed; every key the patch sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), String> {
    let Some(list) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let bad = || "invalid patch format of retainKeys".to_string();
    let Value::Array(list) = list else {
        return Err(bad());
    };
    let listed = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: merge the lists named by `$setElementOrder`
/// directives and order them as listed.
fn merge_ordered_lists(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    meta: PatchMeta,
) -> Result<(), String> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    let bad = || "invalid patch format of setElementOrder list".to_string();
    for k in keys {
        let Some(Value::Array(order)) = patch.remove(&k) else {
            return Err(bad());
        };
        let name = &k[SET_ORDER_PREFIX.len()..];
        if name.is_empty() {
            return Err(bad());
        }
        let orig = match original.get(name) {
            Some(Value::Array(l)) => Some(l.clone()),
            Some(_) => return Err(format!("invalid type for {name}: not a list")),
            None => None,
        };
        let plist = match patch.get(name) {
            Some(Value::Array(l)) => Some(l.clone()),
            Some(_) => return Err(format!("invalid type for {name}: not a list")),
            None => None,
        };
        let field = meta.field(name);
        if let Some(p) = &plist {
            validate_order(p, &order, field.key)?;
        }
        let server_order = orig.clone().unwrap_or_default();
        let merged = match (orig, plist) {
            (Some(o), None) => o,
            (None, Some(p)) => merge_list(Vec::new(), p, field, false)?,
            (Some(o), Some(p)) => merge_list(o, p, field, false)?,
            (None, None) => continue,
        };
        let is_map = merged.iter().chain(order.iter()).any(Value::is_object);
        let key = if is_map { field.key } else { "" };
        if is_map && key.is_empty() {
            return Err("cannot merge lists without merge key".into());
        }
        let (patch_items, server_only) = partition(merged, &order, key, is_map)?;
        let both = normalize_order(patch_items, server_only, &order, &server_order, key, is_map)?;
        original.insert(name.to_string(), Value::Array(both));
        patch.remove(name);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list's items (deletions
/// aside) appear in the order list, in the same relative order.
fn validate_order(patch: &[Value], order: &[Value], key: &str) -> Result<(), String> {
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| v.get(DIRECTIVE).is_none())
        .collect();
    let (mut i, mut j) = (0, 0);
    while i < items.len() && j < order.len() {
        let equal = if key.is_empty() || !items[i].is_object() {
            same(items[i], &order[j])
        } else {
            match (items[i].get(key), order[j].get(key)) {
                (Some(a), Some(b)) => same(a, b),
                (None, _) => return Err(no_merge_key(items[i], key)),
                (_, None) => return Err(no_merge_key(&order[j], key)),
            }
        };
        if equal {
            i += 1;
        }
        j += 1;
    }
    if i < items.len() {
        return Err(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        ));
    }
    Ok(())
}

/// Split `items` into those present in `by` and the others.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: &str,
    is_map: bool,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut present = Vec::new();
    let mut other = Vec::new();
    for v in items {
        let found = if is_map {
            let Some(kv) = v.get(key) else {
                return Err(no_merge_key(&v, key));
            };
            find_by_key(by, key, kv).is_some()
        } else {
            by.iter().any(|b| same(b, &v))
        };
        if found {
            present.push(v);
        } else {
            other.push(v);
        }
    }
    Ok((present, other))
}

/// `normalizeElementOrder`: patch items in the patch's order, server-only
/// items in the live order, interleaved as in the live list.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    is_map: bool,
) -> Result<Vec<Value>, String> {
    if is_map {
        for v in patch_items.iter().chain(server_only.iter()) {
            if v.get(key).is_none() {
                return Err(no_merge_key(v, key));
            }
        }
    }
    let pos = |list: &[Value], v: &Value| index_of(list, v, key, is_map);
    patch_items.sort_by_key(|v| pos(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| pos(server_order, v).unwrap_or(usize::MAX));
    if server_only.is_empty() {
        return Ok(patch_items);
    }
    if patch_items.is_empty() {
        return Ok(server_only);
    }
    // mergeSortedSlice(left = server-only, right = patch items): take a
    // server-only item first only if both are live and it comes first.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let take_left = matches!(
                    (pos(server_order, l), pos(server_order, r)),
                    (Some(a), Some(b)) if a < b
                );
                out.extend(if take_left { left.next() } else { right.next() });
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => return Ok(out),
        }
    }
}

fn index_of(list: &[Value], v: &Value, key: &str, is_map: bool) -> Option<usize> {
    if is_map {
        let kv = v.get(key)?;
        find_by_key(list, key, kv)
    } else {
        list.iter().position(|x| same(x, v))
    }
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Option<usize> {
    list.iter()
        .position(|v| v.get(key).is_some_and(|x| same(x, value)))
}

/// `sliceElementType`: all elements are maps, or none is; no lists.
fn element_kind_is_map(a: &[Value], b: &[Value]) -> Result<bool, String> {
    let mut kind = None;
    for v in a.iter().chain(b.iter()) {
        if v.is_array() {
            return Err("lists of lists are not supported".into());
        }
        let m = v.is_object();
        if *kind.get_or_insert(m) != m {
            return Err("mismatched types in the list".into());
        }
    }
    Ok(kind.unwrap_or(false))
}

/// Equality as Go compares decoded JSON (numbers as float64).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn no_merge_key(v: &Value, key: &str) -> String {
    format!("map: {v} does not contain declared merge key: {key}")
}

fn bad_patch_type(d: &Value, patch: &Map<String, Value>) -> String {
    format!("invalid patch type {d} in {}", Value::Object(patch.clone()))
}
