//! Pruning: fields a structural schema does not declare are dropped (and
//! reported, for fieldValidation), unless the schema preserves them.

use serde_json::Value;

use crate::api::crd::schema::{Additional, Schema};

/// Drop undeclared fields below the root; returns their paths
/// (`spec.foo`). apiVersion, kind and metadata are not the schema's business.
pub fn prune(obj: &mut Value, schema: &Schema) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        object(map, schema, "", true, &mut unknown);
    }
    unknown
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn object(
    map: &mut serde_json::Map<String, Value>,
    schema: &Schema,
    path: &str,
    resource: bool,
    unknown: &mut Vec<String>,
) {
    let mut drop = Vec::new();
    for (k, v) in map.iter_mut() {
        if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child = match schema.properties.get(k) {
            Some(s) => Some(s),
            None => match &schema.additional {
                Additional::Schema(s) => Some(&**s),
                _ => None,
            },
        };
        match child {
            Some(s) => value(v, s, &join(path, k), unknown),
            None if schema.keeps_unknown() => {}
            None => drop.push(k.clone()),
        }
    }
    for k in drop {
        map.remove(&k);
        unknown.push(join(path, &k));
    }
}

fn value(v: &mut Value, schema: &Schema, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(map) => object(map, schema, path, schema.embedded, unknown),
        Value::Array(items) => {
            if let Some(item) = &schema.items {
                for (i, e) in items.iter_mut().enumerate() {
                    value(e, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_fields_go_unless_preserved() {
        let schema = Schema::parse(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "a": {"type": "string"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                }},
            },
        }))
        .expect("schema");
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "top": 1,
            "spec": {"a": "x", "b": 2, "free": {"any": {"thing": 1}},
                "list": [{"n": 1, "m": 2}], "labels": {"k": "v"}},
        });
        let unknown = prune(&mut obj, &schema);
        assert_eq!(unknown, ["spec.list[0].m", "spec.b", "top"]);
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
                "spec": {"a": "x", "free": {"any": {"thing": 1}}, "list": [{"n": 1}], "labels": {"k": "v"}}})
        );
    }
}
