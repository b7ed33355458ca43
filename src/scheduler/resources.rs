//! What a pod asks of a node: its effective requests, computed the way
//! upstream's resource helpers do (init containers, sidecars, overhead).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::quantity::parse_quantity;

/// Resource name → amount in billionths of a unit (exact for every
/// quantity Kubernetes accepts).
pub type Resources = BTreeMap<String, i128>;

/// Requests the scheduler's scores assume for a container that sets none
/// (upstream's DefaultMilliCPURequest and DefaultMemoryRequest).
const DEFAULT_CPU_NANOS: i128 = 100_000_000;
const DEFAULT_MEMORY_NANOS: i128 = 200 * 1024 * 1024 * 1_000_000_000;

pub fn nanos(q: &Quantity) -> i128 {
    parse_quantity(&q.0).map_or(0, |q| q.nanos())
}

pub fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), nanos(v)))
        .collect()
}

fn add(into: &mut Resources, r: &Resources) {
    for (k, v) in r {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn max_into(into: &mut Resources, r: &Resources) {
    for (k, v) in r {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn requests_of(c: &Container) -> Resources {
    from_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The pod's effective requests: the larger of what its app containers
/// (plus sidecars) need and what each init container needs while it runs
/// (plus the sidecars started before it), plus the pod overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    pod_requests_with(spec, requests_of)
}

/// The pod's effective limits, combined as its requests are (what quota
/// charges for `limits.*`, what the pod cgroup is limited to).
pub fn pod_limits(spec: &PodSpec) -> Resources {
    pod_requests_with(spec, |c| {
        from_map(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
    })
}

/// Requests with upstream's scoring defaults for containers that set no
/// cpu or memory request, so empty pods still spread.
pub fn pod_requests_non_zero(spec: &PodSpec) -> Resources {
    pod_requests_with(spec, |c| {
        let mut r = requests_of(c);
        r.entry("cpu".into()).or_insert(DEFAULT_CPU_NANOS);
        r.entry("memory".into()).or_insert(DEFAULT_MEMORY_NANOS);
        r
    })
}

fn pod_requests_with(spec: &PodSpec, each: impl Fn(&Container) -> Resources) -> Resources {
    let mut total = Resources::new();
    for c in &spec.containers {
        add(&mut total, &each(c));
    }
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let r = each(c);
        if is_sidecar(c) {
            add(&mut sidecars, &r);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut running = sidecars.clone();
            add(&mut running, &r);
            max_into(&mut init_peak, &running);
        }
    }
    add(&mut total, &sidecars);
    max_into(&mut total, &init_peak);
    add(&mut total, &from_map(spec.overhead.as_ref()));
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("pod spec")
    }

    fn c(name: &str, cpu: &str) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": {"cpu": cpu}}})
    }

    #[test]
    fn init_containers_take_the_max_and_sidecars_add() {
        let s = spec(json!({"containers": [c("a", "100m"), c("b", "200m")],
            "initContainers": [c("i", "1")]}));
        assert_eq!(pod_requests(&s)["cpu"], 1_000_000_000);
        let s = spec(json!({"containers": [c("a", "100m")],
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                c("i", "120m")],
            "overhead": {"cpu": "10m"}}));
        // max(100m + 50m, 50m + 120m) + 10m
        assert_eq!(pod_requests(&s)["cpu"], 180_000_000);
    }

    #[test]
    fn scoring_defaults_for_empty_requests() {
        let s = spec(json!({"containers": [{"name": "a"}]}));
        assert!(pod_requests(&s).is_empty());
        assert_eq!(pod_requests_non_zero(&s)["cpu"], DEFAULT_CPU_NANOS);
    }
}
