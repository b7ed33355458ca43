//! ResourceQuota admission: a new object is refused when it would take a
//! quota of its namespace over `hard`, and otherwise charged to the
//! quota's `status.used` at once (as upstream does, so two creates cannot
//! both take the last unit; the quota controller recounts later).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::api::quantity::parse_quantity_value;
use crate::api::quota::{self, Usage};
use crate::apiserver::object;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::datastore::StoreError;

use super::plugins::{list_in, Admitted};

/// Rounds of re-reading the quotas when one changed under the charge.
const ATTEMPTS: usize = 8;

fn usage_of(v: Option<&Value>) -> Usage {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), parse_quantity_value(q).ok()?)))
        .collect()
}

fn mask(u: &Usage, keys: &[&String]) -> Usage {
    u.iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The quota with the new object charged, None if it does not concern
/// the object, or why the object may not be created.
fn charge_one(
    a: &Admitted<'_>,
    rq: &Value,
    obj: &Value,
    delta: &Usage,
) -> ApiResult<Option<Value>> {
    let (group, plural) = (a.info.group, a.info.plural);
    if !quota::in_scope(rq, plural == "pods" && group.is_empty(), obj) {
        return Ok(None);
    }
    let name = object::name(rq).unwrap_or("");
    let hard = usage_of(rq.pointer("/status/hard"));
    let used = usage_of(rq.pointer("/status/used"));
    let restricted: Vec<&str> = hard
        .keys()
        .map(String::as_str)
        .filter(|k| quota::tracks(group, plural, k))
        .collect();
    if restricted.is_empty() {
        return Ok(None);
    }
    if let Err(why) = quota::pod_constraints(group, plural, &restricted, obj) {
        return Err(a.forbidden(&format!("failed quota: {name}: {why}")));
    }
    if restricted.iter().any(|k| !used.contains_key(*k)) {
        return Err(a.forbidden(&format!(
            "status unknown for quota: {name}, resources: {}",
            restricted.join(",")
        )));
    }
    let hard_keys: Vec<&String> = hard.keys().collect();
    let requested = mask(delta, &hard_keys);
    if requested.is_empty() {
        return Ok(None);
    }
    let mut new_used = used.clone();
    quota::add(&mut new_used, &requested);
    let exceeded: Vec<&String> = requested
        .keys()
        .filter(|k| new_used.get(*k) > hard.get(*k))
        .collect();
    if !exceeded.is_empty() {
        return Err(a.forbidden(&format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            quota::pretty(&mask(&requested, &exceeded)),
            quota::pretty(&mask(&used, &exceeded)),
            quota::pretty(&mask(&hard, &exceeded)),
        )));
    }
    let mut charged = rq.clone();
    for (k, v) in &new_used {
        charged["status"]["used"][k] = json!(v.canonical());
    }
    Ok(Some(charged))
}

/// Checks the new object against every quota of its namespace and charges
/// those it counts against.
pub async fn charge(a: &Admitted<'_>, obj: &Value) -> ApiResult<()> {
    let delta = quota::usage(a.info.group, a.info.plural, obj);
    if delta.is_empty() {
        return Ok(());
    }
    let mut done: HashSet<String> = HashSet::new();
    for _ in 0..ATTEMPTS {
        let (info, quotas) =
            list_in(a.state, "", "v1", "resourcequotas", Some(a.namespace)).await?;
        let mut writes = Vec::new();
        for (rq, rev) in &quotas {
            let name = object::name(rq).unwrap_or("").to_string();
            if done.contains(&name) {
                continue;
            }
            if let Some(charged) = charge_one(a, rq, obj, &delta)? {
                writes.push((name, charged, *rev));
            }
        }
        if a.dry_run {
            return Ok(());
        }
        let mut conflicted = false;
        for (name, charged, rev) in writes {
            let key = info.key(Some(a.namespace), &name);
            match a
                .state
                .store
                .update(&key, object::to_stored(&charged), rev)
                .await
            {
                Ok(_) => {
                    done.insert(name);
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound) => conflicted = true,
                Err(e) => return Err(e.into()),
            }
        }
        if !conflicted {
            return Ok(());
        }
    }
    Err(ApiError::internal("resource quota evaluation timed out"))
}
