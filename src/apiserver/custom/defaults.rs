//! Defaulting from a structural schema's `default` values.

use serde_json::Value;

use crate::api::crd::schema::Schema;

/// Fill absent (or null, where null is not allowed) fields with their
/// schema defaults, top down, so defaults inside defaults apply too.
pub fn apply(obj: &mut Value, schema: &Schema) {
    node(obj, schema, true);
}

fn node(v: &mut Value, schema: &Schema, resource: bool) {
    match v {
        Value::Object(map) => {
            for (k, s) in &schema.properties {
                if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let Some(d) = &s.default else { continue };
                match map.get(k) {
                    None => {
                        map.insert(k.clone(), d.clone());
                    }
                    Some(Value::Null) if !s.nullable => {
                        map.insert(k.clone(), d.clone());
                    }
                    _ => {}
                }
            }
            for (k, child) in map.iter_mut() {
                if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(s) = schema.child(k) {
                    node(child, s, s.embedded);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = &schema.items {
                for e in items {
                    node(e, s, s.embedded);
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
    fn defaults_fill_absent_and_null_fields() {
        let schema = Schema::parse(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "image": {"type": "string", "default": "nginx"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
            }},
        }}))
        .expect("schema");
        let mut o = json!({"metadata": {}});
        apply(&mut o, &schema);
        assert_eq!(o["spec"], json!({"replicas": 1, "image": "nginx"}));
        let mut o = json!({"spec": {"replicas": 3, "image": null, "ports": [{}]}});
        apply(&mut o, &schema);
        assert_eq!(
            o["spec"],
            json!({"replicas": 3, "image": "nginx", "ports": [{"protocol": "TCP"}]})
        );
    }
}
