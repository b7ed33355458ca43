//! Priority admission: a new pod's `spec.priority` and `preemptionPolicy`
//! come from the PriorityClass its `priorityClassName` names, or from the
//! global default class when it names none.

use serde_json::{json, Value};

use crate::apiserver::status::ApiResult;

use super::plugins::{list_in, Admitted};

/// The classes every cluster has: name, value, description.
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// A class's value and preemption policy.
fn resolved(class: &Value) -> (i64, String) {
    (
        class.get("value").and_then(Value::as_i64).unwrap_or(0),
        class
            .get("preemptionPolicy")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_PREEMPTION)
            .to_string(),
    )
}

/// The name, value and policy for a pod naming `wanted` (empty: none),
/// from the stored classes; None when the named class does not exist.
fn pick(classes: &[Value], wanted: &str) -> Option<(String, i64, String)> {
    let name_of = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if wanted.is_empty() {
        // Several defaults can exist after a race; upstream takes the lowest.
        let default = classes
            .iter()
            .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|c| resolved(c).0);
        return Some(match default {
            Some(c) => {
                let (v, p) = resolved(c);
                (name_of(c), v, p)
            }
            None => (String::new(), 0, DEFAULT_PREEMPTION.to_string()),
        });
    }
    if let Some(c) = classes.iter().find(|c| name_of(c) == wanted) {
        let (v, p) = resolved(c);
        return Some((wanted.to_string(), v, p));
    }
    // Known before bootstrap has written them.
    SYSTEM_CLASSES
        .iter()
        .find(|(n, _, _)| *n == wanted)
        .map(|(n, v, _)| (n.to_string(), *v, DEFAULT_PREEMPTION.to_string()))
}

pub async fn admit(a: &Admitted<'_>, pod: &mut Value) -> ApiResult<()> {
    let wanted = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (_, classes) = list_in(a.state, "scheduling.k8s.io", "v1", "priorityclasses", None).await?;
    let classes: Vec<Value> = classes.into_iter().map(|(c, _)| c).collect();
    let Some((name, value, policy)) = pick(&classes, &wanted) else {
        return Err(a.forbidden(&format!("no PriorityClass with name {wanted} was found")));
    };
    let spec = &mut pod["spec"];
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(a.forbidden(&format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            )));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(a.forbidden(&format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
    }
    if !name.is_empty() {
        spec["priorityClassName"] = json!(name);
    }
    spec["priority"] = json!(value);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

/// An update keeps the priority create resolved when it leaves it out
/// (validation refuses any other change).
pub fn carry_on_update(new: &mut Value, old: &Value) {
    for field in ["priority", "preemptionPolicy"] {
        let missing = new
            .pointer(&format!("/spec/{field}"))
            .is_none_or(Value::is_null);
        if let Some(v) = old.pointer(&format!("/spec/{field}")).filter(|_| missing) {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert(field.into(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_default_and_system_classes() {
        let classes = vec![
            json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}),
            json!({"metadata": {"name": "low-default"}, "value": 5, "globalDefault": true}),
            json!({"metadata": {"name": "lower-default"}, "value": 3, "globalDefault": true}),
        ];
        assert_eq!(
            pick(&classes, "high"),
            Some(("high".into(), 1000, "Never".into()))
        );
        assert_eq!(
            pick(&classes, ""),
            Some(("lower-default".into(), 3, DEFAULT_PREEMPTION.into()))
        );
        assert_eq!(
            pick(&[], ""),
            Some((String::new(), 0, DEFAULT_PREEMPTION.into()))
        );
        assert_eq!(pick(&classes, "missing"), None);
        assert_eq!(
            pick(&[], "system-node-critical").map(|p| p.1),
            Some(2_000_001_000)
        );
    }

    #[test]
    fn updates_keep_the_resolved_priority() {
        let old = json!({"spec": {"priority": 1000, "preemptionPolicy": "Never"}});
        let mut new = json!({"spec": {"containers": []}});
        carry_on_update(&mut new, &old);
        assert_eq!(new["spec"]["priority"], 1000);
        assert_eq!(new["spec"]["preemptionPolicy"], "Never");
    }
}
