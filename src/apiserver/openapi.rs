//! OpenAPI documents: `/openapi/v2` (one Swagger 2.0 document, JSON or
//! gnostic protobuf) and `/openapi/v3` (an index of one OpenAPI 3 document per
//! group-version). They describe every served kind: its operations and its
//! schema, which `kubectl explain` prints and kubectl's apply reads patch
//! metadata from.
//!
//! Documents are built on first request and kept serialized; the schemas
//! they are built from are unpacked only while building (see `schemas`).

pub mod crd;
mod paths;
pub mod schemas;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::api::registry;

/// A served kind, as the documents describe it.
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

/// What the documents are built from.
struct Sources {
    kinds: Vec<Kind>,
    /// Definitions beyond the built-in ones, in the form `crd::definitions`
    /// returns.
    extra: Vec<(String, Value)>,
}

/// The served kinds and their extra definitions: custom resources bring
/// theirs from their CRD; the CRD sync calls `invalidate()` on any change.
fn sources() -> Sources {
    let mut kinds = Vec::new();
    let mut extra = Vec::new();
    for r in registry::all() {
        kinds.push(Kind {
            group: r.group.to_string(),
            version: r.version.to_string(),
            kind: r.kind.to_string(),
            plural: r.plural.to_string(),
            namespaced: r.namespaced(),
        });
        // Custom resources bring their structural schema.
        if let Some(schema) = r.custom.as_ref().and_then(|c| c.openapi.as_ref()) {
            extra.extend(crd::definitions(r.group, r.version, r.kind, schema));
        }
    }
    Sources { kinds, extra }
}

/// Definitions every document holds: what the operations of any
/// group-version return besides its kinds.
const COMMON: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
];

/// Serialized documents by key (`v2.json`, `v2.pb`, `v3/api/v1`).
static CACHE: Mutex<Option<HashMap<String, Bytes>>> = Mutex::new(None);

/// Drop the built documents: the served kinds or their schemas changed.
pub fn invalidate() {
    if let Ok(mut c) = CACHE.lock() {
        *c = None;
    }
}

/// The document under `key`, built by `build` if missing. Only documents
/// that exist are remembered, so requests for unknown ones cannot grow the
/// cache.
fn cached(key: &str, build: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
    // A poisoned lock only means a build panicked: the map is still whole.
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let docs = guard.get_or_insert_with(HashMap::new);
    if let Some(doc) = docs.get(key) {
        return Some(doc.clone());
    }
    let doc = build();
    // Building parses and drops several MB of JSON: hand the freed pages
    // back so the resident size returns to what the cached bytes need.
    crate::malloc::release_freed_memory();
    if let Some(d) = &doc {
        docs.insert(key.to_string(), d.clone());
    }
    doc
}

/// The built-in definitions plus the extra ones.
fn all_definitions(src: &Sources) -> Map<String, Value> {
    let mut defs = schemas::builtin();
    for (name, def) in &src.extra {
        defs.insert(name.clone(), def.clone());
    }
    defs
}

/// The paths of `kinds` and the definitions they need: those of the kinds
/// and their lists, and all these refer to; in OpenAPI 3 or Swagger 2.0
/// form.
fn describe(src: &Sources, kinds: &[&Kind], v3: bool) -> (Map<String, Value>, Map<String, Value>) {
    let defs = all_definitions(src);
    let mut paths = Map::new();
    let mut roots: Vec<&str> = COMMON.to_vec();
    for k in kinds {
        let list_kind = format!("{}List", k.kind);
        let bodies = paths::Bodies {
            object: schemas::find_kind(&defs, &k.group, &k.version, &k.kind),
            list: schemas::find_kind(&defs, &k.group, &k.version, &list_kind),
        };
        paths::add_paths(&mut paths, k, bodies, v3);
        roots.extend(bodies.object.into_iter().chain(bodies.list));
    }
    let mut definitions = schemas::closure(&defs, roots);
    if v3 {
        definitions.values_mut().for_each(schemas::to_v3);
        schemas::v3_unions(&mut definitions);
    } else {
        definitions.values_mut().for_each(schemas::to_v2);
    }
    (paths, definitions)
}

fn serialize(doc: &Value) -> Option<Bytes> {
    match serde_json::to_vec(doc) {
        Ok(b) => Some(Bytes::from(b)),
        Err(e) => {
            tracing::error!("serializing an OpenAPI document: {e}");
            None
        }
    }
}

fn v2_document(src: &Sources, version: &str) -> Value {
    let kinds: Vec<&Kind> = src.kinds.iter().collect();
    let (paths, definitions) = describe(src, &kinds, false);
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": version },
        "paths": paths,
        "definitions": definitions,
    })
}

/// `/openapi/v2` as JSON.
pub fn v2_json(version: &str) -> Option<Bytes> {
    cached("v2.json", || serialize(&v2_document(&sources(), version)))
}

/// `/openapi/v2` as gnostic protobuf.
pub fn v2_protobuf(version: &str) -> Option<Bytes> {
    cached("v2.pb", || {
        Some(Bytes::from(crate::apiserver::openapi_pb::encode(
            &v2_document(&sources(), version),
        )))
    })
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents. Each URL
/// carries a hash of what its document is built from, so clients may
/// cache a document for as long as its URL stays the same.
pub fn v3_root() -> Value {
    v3_index(&sources())
}

fn v3_index(src: &Sources) -> Value {
    let paths: Map<String, Value> = v3_hashes(src)
        .into_iter()
        .map(|(p, hash)| {
            let url = format!("/openapi/v3/{p}?hash={hash}");
            (p, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The hash of the document of a served group-version (`api/v1`).
pub fn v3_hash(path: &str) -> Option<String> {
    v3_hashes(&sources())
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, h)| h)
}

/// (group-version path, hash of what its document is built from).
fn v3_hashes(src: &Sources) -> Vec<(String, String)> {
    let mut hashers: Vec<(String, Sha256)> = Vec::new();
    for k in &src.kinds {
        let p = gv_path(&k.group, &k.version);
        let i = match hashers.iter().position(|(q, _)| *q == p) {
            Some(i) => i,
            None => {
                let mut h = Sha256::new();
                h.update(schemas::fingerprint());
                h.update(p.as_bytes());
                hashers.push((p, h));
                hashers.len() - 1
            }
        };
        let h = &mut hashers[i].1;
        for s in [&k.kind, &k.plural] {
            h.update(s.as_bytes());
            h.update([0]);
        }
        h.update([u8::from(k.namespaced)]);
        let gvk = json!([{ "group": k.group, "version": k.version, "kind": k.kind }]);
        for (name, def) in src
            .extra
            .iter()
            .filter(|(_, d)| d["x-kubernetes-group-version-kind"] == gvk)
        {
            h.update(name.as_bytes());
            h.update(def.to_string().as_bytes());
        }
    }
    hashers
        .into_iter()
        .map(|(p, h)| (p, hex::encode_upper(&h.finalize()[..16])))
        .collect()
}

fn v3_document(src: &Sources, path: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&Kind> = src
        .kinds
        .iter()
        .filter(|k| gv_path(&k.group, &k.version) == path)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let (paths, schemas) = describe(src, &kinds, true);
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": version },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`; None for a
/// group-version not served.
pub fn v3_group_version(path: &str, version: &str) -> Option<Bytes> {
    cached(&format!("v3/{path}"), || {
        v3_document(&sources(), path, version).and_then(|d| serialize(&d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_documents_hold_operations_and_schemas_of_their_kinds() {
        let doc = v3_document(&sources(), "apis/apps/v1", "v1.33.0").expect("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert_eq!(
            patch["requestBody"]["content"]["application/merge-patch+json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
        let list = &doc["paths"]["/apis/apps/v1/deployments"]["get"];
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentList"
        );
        let schemas = &doc["components"]["schemas"];
        let spec = &schemas["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert!(schemas.get("io.k8s.api.core.v1.PodSpec").is_some());
        assert!(schemas.get("io.k8s.api.core.v1.Service").is_none());
        assert!(v3_document(&sources(), "apis/nope/v1", "v1.33.0").is_none());
    }

    #[test]
    fn v3_root_lists_every_group_version_with_a_hash() {
        let root = v3_root();
        let url = root["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .expect("api/v1");
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        assert!(root["paths"].get("apis/apps/v1").is_some());
    }

    #[test]
    fn v2_document_has_definitions_with_swagger_references() {
        let doc = v2_document(&sources(), "v1.33.0");
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let create = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"];
        let body = create["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
            .expect("body parameter");
        assert_eq!(
            body["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        assert_eq!(
            create["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
    }
}

#[cfg(test)]
mod crd_tests {
    use super::*;

    fn with_crontab(schema: Value) -> Sources {
        let mut src = sources();
        src.kinds.push(Kind {
            group: "stable.example.com".into(),
            version: "v1".into(),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
            namespaced: true,
        });
        src.extra = crd::definitions("stable.example.com", "v1", "CronTab", &schema);
        src
    }

    #[test]
    fn custom_resources_join_the_documents() {
        let src = with_crontab(json!({ "type": "object", "properties": {
            "spec": { "type": "object", "properties": { "cronSpec": { "type": "string" } } },
        }}));
        let doc = v3_document(&src, "apis/stable.example.com/v1", "v1.33.0").expect("crontab doc");
        let schemas = &doc["components"]["schemas"];
        let crontab = &schemas["com.example.stable.v1.CronTab"];
        assert_eq!(
            crontab["properties"]["spec"]["properties"]["cronSpec"]["type"],
            "string"
        );
        assert_eq!(
            crontab["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(schemas
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some());
        assert!(schemas.get("com.example.stable.v1.CronTabList").is_some());
        assert!(doc["paths"]
            .get("/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}")
            .is_some());

        let v2 = v2_document(&src, "v1.33.0");
        assert_eq!(
            v2["definitions"]["com.example.stable.v1.CronTab"]["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
    }

    #[test]
    fn a_changed_schema_changes_the_documents_hash() {
        let url = |src: &Sources| v3_index(src)["paths"]["apis/stable.example.com/v1"].clone();
        let a = with_crontab(json!({ "type": "object" }));
        let b = with_crontab(json!({ "type": "object", "description": "changed" }));
        assert_eq!(url(&a), url(&with_crontab(json!({ "type": "object" }))));
        assert_ne!(url(&a), url(&b));
        assert_eq!(
            v3_index(&a)["paths"]["api/v1"],
            v3_index(&b)["paths"]["api/v1"]
        );
    }
}
