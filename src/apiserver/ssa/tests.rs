use serde_json::{json, Value};

use super::fieldset::Set;
use super::types::{builtin, TyRef, Types};
use super::walk::{self, Scope};

const MAIN: Scope = Scope::Main { status_apart: true };

fn deployment() -> TyRef<'static> {
    builtin().kind("apps/v1", "Deployment")
}

fn set(v: Value) -> Set {
    Set::from_fields_v1(&v)
}

#[test]
fn fields_v1_round_trip_and_set_algebra() {
    let a =
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}});
    let s = set(a.clone());
    assert_eq!(s.to_fields_v1(), a);
    let b = set(json!({"f:spec": {"f:replicas": {}, "f:paused": {}}}));
    assert_eq!(
        s.intersection(&b).to_fields_v1(),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        s.difference(&b).to_fields_v1(),
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    let mut u = s.clone();
    u.union(&b);
    assert_eq!(u.paths().len(), 4);
    // a removed member takes its whole subtree
    let mut t = s.clone();
    t.remove_subtrees(&set(json!({"f:metadata": {"f:labels": {}}})));
    assert_eq!(t.to_fields_v1(), json!({"f:spec": {"f:replicas": {}}}));
}

#[test]
fn paths_print_like_upstream() {
    let s = set(
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:image": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}}}
    }}}, "f:hosts": {"v:\"a\"": {}}}}),
    );
    assert_eq!(
        s.paths(),
        [
            ".spec.hosts[=\"a\"]",
            ".spec.template.spec.containers[name=\"web\"].image",
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"]",
        ]
    );
}

#[test]
fn list_types_come_from_the_openapi_extensions() {
    let d = deployment();
    let pod = d.field("spec").field("template").field("spec");
    assert_eq!(
        *pod.field("containers").list_kind(),
        super::types::ListKind::Map(vec!["name".into()])
    );
    assert_eq!(
        *pod.field("containers").item().field("ports").list_kind(),
        super::types::ListKind::Map(vec!["containerPort".into(), "protocol".into()])
    );
    assert_eq!(
        *pod.field("tolerations").list_kind(),
        super::types::ListKind::Atomic
    );
    assert_eq!(
        *d.field("metadata").field("finalizers").list_kind(),
        super::types::ListKind::Set
    );
    // selector is an atomic map
    assert!(!d.field("spec").field("selector").granular_object());
    assert!(d.field("metadata").field("labels").is_map());
}

#[test]
fn apply_set_skips_server_fields_and_keys_items() {
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "d", "labels": {"app": "x"}},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"spec": {"containers": [
            {"name": "web", "image": "i", "args": ["a"], "ports": [{"containerPort": 80}]}
        ]}}},
        "status": {"replicas": 3}
    });
    let live = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
    ]}}}});
    let s = walk::to_set(&config, deployment(), MAIN, Some(&live));
    assert_eq!(
        s.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
            }}}}
        })
    );
}

#[test]
fn update_changes_mark_new_maps_and_items() {
    let old = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}});
    let new = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 2}});
    let (changed, removed) = walk::changes(Some(&old), &new, deployment(), MAIN);
    assert_eq!(
        changed.to_fields_v1(),
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:replicas": {}}})
    );
    assert!(removed.is_empty());
    let (changed, removed) = walk::changes(Some(&new), &old, deployment(), MAIN);
    assert_eq!(
        changed.to_fields_v1(),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        removed.to_fields_v1(),
        json!({"f:metadata": {"f:labels": {}}})
    );
}

#[test]
fn merge_by_list_type_and_remove_what_the_applier_dropped() {
    let ty = deployment();
    let live = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "2"}],
        "tolerations": [{"key": "k"}]
    }}}});
    let config = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "3"}, {"name": "a", "image": "9"}],
        "tolerations": [{"key": "z"}]
    }}}});
    let mut merged = walk::merge(&live, &config, ty);
    let pod = &merged["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"],
        json!([{"name": "c", "image": "3"}, {"name": "a", "image": "9", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "2"}])
    );
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "z"}]),
        "atomic list replaced"
    );
    let gone = set(
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            ".": {},
            "k:{\"name\":\"b\"}": {".": {}, "f:image": {}},
            "k:{\"name\":\"a\"}": {"f:env": {}}
        }}}}}),
    );
    // the applier still sets container c and a's image: the list stays
    let keep = walk::to_set(&config, ty, MAIN, None);
    walk::remove(&mut merged, &gone, &keep, ty);
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "3"}, {"name": "a", "image": "9"}])
    );
}

#[test]
fn crd_types_from_the_structural_schema() {
    let schema = crate::api::crd::schema::Schema::parse(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "jobs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
            "args": {"type": "array", "items": {"type": "string"}}
        }}}
    }))
    .expect("schema");
    let types = Types::from_crd(Some(&schema));
    let spec = types.root().field("spec");
    assert_eq!(
        *spec.field("hosts").list_kind(),
        super::types::ListKind::Set
    );
    assert_eq!(
        *spec.field("jobs").list_kind(),
        super::types::ListKind::Map(vec!["name".into()])
    );
    assert_eq!(
        *spec.field("args").list_kind(),
        super::types::ListKind::Atomic
    );
    assert!(!spec.field("sel").granular_object());
    // metadata is ObjectMeta whatever the schema says
    assert!(types.root().field("metadata").field("labels").is_map());
    // unknown content is deduced: objects granular
    assert!(Types::deduced().field("x").granular_object());
}
