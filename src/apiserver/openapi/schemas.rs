//! The schemas of the built-in types, keyed by their upstream names
//! (`io.k8s.api.core.v1.PodSpec`), with references as `#/definitions/NAME`.
//!
//! They are generated from k8s-openapi's schema support (with the list and
//! map types of k8s-pb's markers) into a gzipped file by
//! scripts/gen-openapi-defs.py, and only unpacked while a document is built:
//! the parsed form is many times the size of the file, and most processes
//! never serve a document. The patch extensions are added here, from the
//! strategic merge patch metadata, so both read the same data.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde_json::{Map, Value};

use crate::apiserver::patch::{self, MERGE, REPLACE, RETAIN_KEYS};

static DEFINITIONS_GZ: &[u8] = include_bytes!("definitions.json.gz");

pub const REF_V2: &str = "#/definitions/";
pub const REF_V3: &str = "#/components/schemas/";

/// A digest of the embedded definitions, for the documents' hashes.
pub fn fingerprint() -> &'static [u8] {
    static DIGEST: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(DEFINITIONS_GZ);
        h.finalize().to_vec()
    })
}

/// All definitions, with the patch extensions of their fields.
pub fn builtin() -> Map<String, Value> {
    let mut text = String::new();
    let parsed = flate2::read::GzDecoder::new(DEFINITIONS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Map<String, Value>>(&text).map_err(|e| e.to_string()));
    let mut defs = match parsed {
        Ok(defs) => defs,
        Err(e) => {
            tracing::error!("embedded OpenAPI definitions unreadable: {e}");
            Map::new()
        }
    };
    add_patch_extensions(&mut defs);
    defs
}

/// The name the patch metadata uses for a definition: `core.v1.PodSpec`.
fn patch_message_name(definition: &str) -> Option<&str> {
    [
        "io.k8s.api.",
        "io.k8s.apimachinery.pkg.apis.",
        "io.k8s.apiextensions-apiserver.pkg.apis.",
        "io.k8s.kube-aggregator.pkg.apis.",
    ]
    .iter()
    .find_map(|prefix| definition.strip_prefix(prefix))
}

fn add_patch_extensions(defs: &mut Map<String, Value>) {
    let by_message: HashMap<String, String> = defs
        .keys()
        .filter_map(|d| Some((patch_message_name(d)?.to_string(), d.clone())))
        .collect();
    for (message, field, flags, key) in patch::strategies() {
        let Some(def) = by_message.get(message) else {
            continue;
        };
        let Some(prop) = defs
            .get_mut(def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let strategy: Vec<&str> = [
            (MERGE, "merge"),
            (RETAIN_KEYS, "retainKeys"),
            (REPLACE, "replace"),
        ]
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, s)| *s)
        .collect();
        prop.insert(
            "x-kubernetes-patch-strategy".into(),
            strategy.join(",").into(),
        );
        if !key.is_empty() {
            prop.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
    }
}

/// The definitions `roots` refer to, directly or through others.
pub fn closure<'a>(
    defs: &Map<String, Value>,
    roots: impl IntoIterator<Item = &'a str>,
) -> Map<String, Value> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut todo: Vec<String> = roots.into_iter().map(str::to_string).collect();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let Some(def) = defs.get(&name) else {
            continue;
        };
        refs(def, &mut |r| todo.push(r.to_string()));
        seen.insert(name);
    }
    let mut out: Map<String, Value> = defs
        .iter()
        .filter(|(k, _)| seen.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort_keys();
    out
}

/// Calls `f` with the name of every definition a schema refers to.
fn refs(schema: &Value, f: &mut impl FnMut(&str)) {
    match schema {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_V2) {
                            f(name);
                        }
                    }
                    // Property names are not schemas; their values are.
                    ("properties", Value::Object(props)) => {
                        props.values().for_each(|p| refs(p, f));
                    }
                    _ => refs(v, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, f)),
        _ => {}
    }
}

/// The name of the definition of a kind (`x-kubernetes-group-version-kind`).
pub fn find_kind<'a>(
    defs: &'a Map<String, Value>,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<&'a str> {
    defs.iter()
        .find(|(_, d)| {
            d["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|gvks| {
                    gvks.iter().any(|g| {
                        g["group"] == group && g["version"] == version && g["kind"] == kind
                    })
                })
        })
        .map(|(k, _)| k.as_str())
}

/// Swagger 2.0 form: a reference with a description of its own is
/// `{"$ref", "description"}` there, where OpenAPI 3 wraps the reference in
/// `allOf` (a sibling of `$ref` is ignored in OpenAPI 3).
pub fn to_v2(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            let single_ref = match o.get("allOf") {
                Some(Value::Array(a)) if a.len() == 1 => a[0].get("$ref").cloned(),
                _ => None,
            };
            if let Some(r) = single_ref {
                o.remove("allOf");
                o.insert("$ref".into(), r);
            }
            o.values_mut().for_each(to_v2);
        }
        Value::Array(a) => a.iter_mut().for_each(to_v2),
        _ => {}
    }
}

/// OpenAPI 3 form: references point into `components.schemas`.
pub fn to_v3(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(name) = r.strip_prefix(REF_V2) {
                    *r = format!("{REF_V3}{name}");
                }
            }
            o.values_mut().for_each(to_v3);
        }
        Value::Array(a) => a.iter_mut().for_each(to_v3),
        _ => {}
    }
}

/// OpenAPI 3 describes the two union scalars as `oneOf` their forms
/// (Swagger 2.0 has no `oneOf`: there they are strings). Being typeless,
/// they keep their own name in `kubectl explain` (`<map[string]Quantity>`).
pub fn v3_unions(defs: &mut Map<String, Value>) {
    for (name, forms) in [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            ["integer", "string"],
        ),
        (
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            ["string", "number"],
        ),
    ] {
        if let Some(Value::Object(d)) = defs.get_mut(name) {
            d.remove("type");
            let one_of = forms.map(|t| serde_json::json!({ "type": t }));
            d.insert("oneOf".into(), Value::Array(one_of.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_definitions_carry_docs_kinds_and_patch_metadata() {
        let defs = builtin();
        let spec = &defs["io.k8s.api.core.v1.PodSpec"];
        let containers = &spec["properties"]["containers"];
        assert!(containers["description"]
            .as_str()
            .is_some_and(|d| d.contains("List of containers")));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            spec["properties"]["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        let ports = &defs["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-list-type"], "map");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            serde_json::json!(["port", "protocol"])
        );
        let selector = &defs["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"];
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            find_kind(&defs, "apps", "v1", "Deployment"),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        assert_eq!(
            find_kind(&defs, "", "v1", "PodList"),
            Some("io.k8s.api.core.v1.PodList")
        );
    }

    #[test]
    fn closure_follows_references_and_not_property_names() {
        let defs = builtin();
        let svc = closure(&defs, ["io.k8s.api.core.v1.Service"]);
        assert!(svc.contains_key("io.k8s.api.core.v1.ServicePort"));
        assert!(svc.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!svc.contains_key("io.k8s.api.core.v1.PodSpec"));
    }

    #[test]
    fn v2_unwraps_described_references_and_v3_moves_them() {
        let mut s = serde_json::json!({"properties": {"spec": {
            "allOf": [{"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}],
            "description": "Spec."
        }}});
        let mut v3 = s.clone();
        to_v2(&mut s);
        assert_eq!(
            s["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        assert!(s["properties"]["spec"].get("allOf").is_none());
        to_v3(&mut v3);
        assert_eq!(
            v3["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
    }
}
