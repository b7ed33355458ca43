//! DefaultTolerationSeconds admission: a new pod that does not tolerate
//! the not-ready and unreachable NoExecute taints gets tolerations for
//! them that last 300 s, so a node's brief trouble does not evict it at
//! once.

use serde_json::{json, Value};

use crate::controllers::nodelifecycle::{NOT_READY, UNREACHABLE};

/// Upstream's --default-not-ready-toleration-seconds and
/// --default-unreachable-toleration-seconds.
const DEFAULT_SECONDS: i64 = 300;

/// Whether a toleration covers the NoExecute taint `key` (an empty key or
/// effect covers all).
fn covers(t: &Value, key: &str) -> bool {
    let k = t.get("key").and_then(Value::as_str).unwrap_or("");
    let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
    (k.is_empty() || k == key) && (effect.is_empty() || effect == "NoExecute")
}

pub fn admit(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [NOT_READY, UNREACHABLE] {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_SECONDS}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_what_is_missing_only() {
        let mut pod = json!({"spec": {"containers": []}});
        admit(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
        let mut own = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        admit(&mut own);
        let list = own["spec"]["tolerations"].as_array().expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["tolerationSeconds"], 5);
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit(&mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }
}
