//! Cases after upstream's strategicpatch tests, on the real Pod and
//! Deployment metadata.

use super::*;
use serde_json::json;

fn pod() -> PatchMeta {
    PatchMeta::for_kind("v1", "Pod").expect("Pod has patch metadata")
}

fn deployment() -> PatchMeta {
    PatchMeta::for_kind("apps/v1", "Deployment").expect("Deployment has patch metadata")
}

fn apply(meta: PatchMeta, original: Value, patch: Value) -> Value {
    strategic_merge(&original, &patch, meta).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn metadata_lookup() {
    assert!(PatchMeta::for_kind("v1", "ConfigMap").is_some());
    assert!(PatchMeta::for_kind("example.com/v1", "Widget").is_none());
    let spec = pod().field("spec");
    let containers = spec.meta.field("containers");
    assert_eq!(containers.strategy, MERGE);
    assert_eq!(containers.key, "name");
    let ports = containers.meta.field("ports");
    assert_eq!((ports.strategy, ports.key), (MERGE, "containerPort"));
    let volumes = spec.meta.field("volumes");
    assert_eq!(
        (volumes.strategy, volumes.key),
        (MERGE | RETAIN_KEYS, "name")
    );
    let strategy = deployment().field("spec").meta.field("strategy");
    assert_eq!(strategy.strategy, RETAIN_KEYS);
    let args = containers.meta.field("args");
    assert_eq!(args.strategy, 0);
}

#[test]
fn containers_merge_by_name() {
    let out = apply(
        pod(),
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:1"}
        ]}}),
        json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}),
    );
    let c = &out["spec"]["containers"];
    assert_eq!(names(c), ["a", "b", "c"]);
    assert_eq!(c[1]["image"], "b:2");
    assert_eq!(c[0]["image"], "a:1");
}

#[test]
fn new_item_without_order_goes_first_like_upstream() {
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "c"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["c", "a", "b"]);
}

#[test]
fn delete_container_by_key() {
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b"]);
    let err = strategic_merge(
        &json!({"spec": {"containers": [{"name": "a"}]}}),
        &json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
}

#[test]
fn replace_list_and_map() {
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "x"}, {"$patch": "replace"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["x"]);
    let out = apply(
        pod(),
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
    let out = apply(
        pod(),
        json!({"metadata": {"labels": {"a": "1"}}}),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
}

#[test]
fn env_and_ports_merge() {
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}),
        json!({"spec": {"containers": [{"name": "a",
            "env": [{"name": "Y", "value": "3"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080}]}]}}),
    );
    let c = &out["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 8080}, {"containerPort": 443}])
    );
}

#[test]
fn volumes_by_name_with_retain_keys() {
    let out = apply(
        pod(),
        json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "c"}}
        ]}}),
        json!({"spec": {"volumes": [
            {"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/d"}}
        ]}}),
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/d"}}, {"name": "cfg", "configMap": {"name": "c"}}])
    );
}

#[test]
fn retain_keys_on_strategy() {
    let out = apply(
        deployment(),
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let err = strategic_merge(
        &json!({"spec": {"strategy": {}}}),
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        deployment(),
    )
    .unwrap_err();
    assert_eq!(err, "invalid patch format of retainKeys");
}

#[test]
fn set_element_order() {
    // kubectl apply: reorder and add, with the new order spelled out.
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "s", "image": "sidecar"}]}}),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
            "containers": [{"name": "c", "image": "c"}]
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "c", "a", "s"]);
    assert_eq!(out["spec"]["containers"][0]["image"], "b");
    // an order without the list only reorders
    let out = apply(
        pod(),
        json!({"metadata": {"finalizers": ["x", "y", "z"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["z", "x"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["y", "z", "x"]));
    let err = strategic_merge(
        &json!({"spec": {"containers": []}}),
        &json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(err.contains("doesn't match $setElementOrder list"), "{err}");
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let out = apply(
        pod(),
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = apply(
        pod(),
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    // a list without the merge strategy is replaced
    let out = apply(
        pod(),
        json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}}),
        json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
    );
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
}

#[test]
fn nulls_delete_and_new_values_are_clean() {
    let out = apply(
        pod(),
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"nodeName": "n"}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"nodeName": null, "hostname": "h"},
               "status": {"phase": "Running", "message": null}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"hostname": "h"}, "status": {"phase": "Running"}})
    );
}

#[test]
fn unknown_directive_is_an_error() {
    let err = strategic_merge(
        &json!({"metadata": {}}),
        &json!({"metadata": {"$patch": "bogus"}}),
        pod(),
    )
    .unwrap_err();
    assert!(err.starts_with("invalid patch type"), "{err}");
    assert!(strategic_merge(&json!({}), &json!([1]), pod()).is_err());
}

#[test]
fn no_metadata_merges_maps_and_replaces_lists() {
    let out = apply(
        PatchMeta::EMPTY,
        json!({"a": {"b": 1, "c": [1, 2]}}),
        json!({"a": {"d": 2, "c": [3]}}),
    );
    assert_eq!(out, json!({"a": {"b": 1, "c": [3], "d": 2}}));
}
