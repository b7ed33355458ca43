//! A pod's QoS class, from its containers' CPU and memory requests and
//! limits. The kubelet uses it to pick eviction order and cgroup parents,
//! so it is fixed in status at create exactly as upstream computes it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::quantity::{parse_quantity_value, Quantity};

use super::json::arr_at;

/// `Guaranteed`, `Burstable` or `BestEffort`. Expects requests already
/// defaulted from limits (pod defaulting does that first).
pub fn pod_qos_class(pod: &Value) -> &'static str {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = arr_at(spec, "containers")
        .iter()
        .chain(arr_at(spec, "initContainers"));
    for c in containers {
        let res = c.get("resources").unwrap_or(&Value::Null);
        for (name, q) in positive_cpu_memory(res.get("requests")) {
            let sum = requests.get(name).map_or(q, |prev| prev.add(&q));
            requests.insert(name, sum);
        }
        let mut found = Vec::new();
        for (name, q) in positive_cpu_memory(res.get("limits")) {
            found.push(name);
            let sum = limits.get(name).map_or(q, |prev| prev.add(&q));
            limits.insert(name, sum);
        }
        if !(found.contains(&"cpu") && found.contains(&"memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// Only cpu and memory count, and only when above zero.
fn positive_cpu_memory(list: Option<&Value>) -> Vec<(&'static str, Quantity)> {
    let mut out = Vec::new();
    let Some(m) = list.and_then(Value::as_object) else {
        return out;
    };
    for name in ["cpu", "memory"] {
        if let Some(q) = m.get(name).and_then(|v| parse_quantity_value(v).ok()) {
            if q > Quantity::zero() {
                out.push((name, q));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: Value) -> Value {
        json!({"spec": {"containers": [{"name": "a", "resources": resources}]}})
    }

    #[test]
    fn classes() {
        assert_eq!(pod_qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            pod_qos_class(&pod(
                json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&pod(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1024Mi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            pod_qos_class(&pod(
                json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}})
            )),
            "Burstable"
        );
        assert_eq!(
            pod_qos_class(&pod(json!({"requests": {"cpu": "0"}}))),
            "BestEffort"
        );
        // Extended resources do not count.
        assert_eq!(
            pod_qos_class(&pod(json!({"limits": {"nvidia.com/gpu": "1"}}))),
            "BestEffort"
        );
    }
}
