//! OpenAPI definitions of custom resources, from the structural schema of a
//! CustomResourceDefinition version, shaped like upstream's (apiextensions
//! controller/openapi/builder): the kind and its List, named by the reversed
//! group (`com.example.stable.v1.CronTab`), with the standard `apiVersion`,
//! `kind` and `metadata` properties and `x-kubernetes-group-version-kind`.

use serde_json::{json, Value};

use super::schemas::REF_V2;

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Upstream's definition name of a kind: `stable.example.com`, `v1`,
/// `CronTab` → `com.example.stable.v1.CronTab`.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn standard_properties(schema: &mut Value, metadata: Value) {
    if !schema.is_object() {
        *schema = json!({});
    }
    if schema.get("type").is_none() {
        schema["type"] = "object".into();
    }
    if !schema["properties"].is_object() {
        schema["properties"] = json!({});
    }
    let props = &mut schema["properties"];
    props["apiVersion"] = json!({ "description": API_VERSION_DOC, "type": "string" });
    props["kind"] = json!({ "description": KIND_DOC, "type": "string" });
    props["metadata"] = metadata;
}

/// The definitions of one served version of a custom resource, as
/// (name, schema) pairs in the form of the built-in ones: give them to
/// `super::Documents` next to the built-in definitions.
///
/// `schema` is the version's `schema.openAPIV3Schema`.
pub fn definitions(group: &str, version: &str, kind: &str, schema: &Value) -> Vec<(String, Value)> {
    let name = definition_name(group, version, kind);
    let mut def = schema.clone();
    standard_properties(
        &mut def,
        json!({
            "allOf": [{ "$ref": format!("{REF_V2}{OBJECT_META}") }],
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        }),
    );
    def["x-kubernetes-group-version-kind"] =
        json!([{ "group": group, "version": version, "kind": kind }]);

    let list_kind = format!("{kind}List");
    let mut list = json!({
        "description": format!("{list_kind} is a list of {kind}"),
        "properties": {
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.to_lowercase()),
                "type": "array",
                "items": { "$ref": format!("{REF_V2}{name}") },
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{ "group": group, "version": version, "kind": list_kind }],
    });
    standard_properties(
        &mut list,
        json!({
            "allOf": [{ "$ref": format!("{REF_V2}{LIST_META}") }],
            "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        }),
    );
    vec![(format!("{name}List"), list), (name, def)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_definitions_are_named_and_tagged_like_upstream() {
        let schema = json!({
            "type": "object",
            "properties": { "spec": { "type": "object", "description": "The spec.",
                "properties": { "cronSpec": { "type": "string" } } } },
        });
        let defs = definitions("stable.example.com", "v1", "CronTab", &schema);
        let (name, def) = &defs[1];
        assert_eq!(name, "com.example.stable.v1.CronTab");
        assert_eq!(def["x-kubernetes-group-version-kind"][0]["kind"], "CronTab");
        assert_eq!(
            def["properties"]["spec"]["properties"]["cronSpec"]["type"],
            "string"
        );
        assert_eq!(
            def["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let (list_name, list) = &defs[0];
        assert_eq!(list_name, "com.example.stable.v1.CronTabList");
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/definitions/com.example.stable.v1.CronTab"
        );
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "CronTabList"
        );
    }
}
