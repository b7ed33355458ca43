//! The OpenAPI v2 document in gnostic's protobuf form
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which
//! client-go asks for and accepts no substitute for.
//!
//! Encoded from the JSON document, so there is one source of truth. Only
//! the parts the JSON document has are encoded: info, paths, operations,
//! query parameters, responses and vendor extensions.

use serde_json::Value;

pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A minimal protobuf writer: fields are appended in the order written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
}

/// `NamedAny { name = 1; Any value = 2 }` with `Any { yaml = 2 }`.
fn vendor_extension(name: &str, value: &Value) -> Msg {
    let yaml = serde_yaml_ng::to_string(value).unwrap_or_default();
    let mut any = Msg::default();
    any.string(2, &yaml);
    let mut named = Msg::default();
    named.string(1, name);
    named.message(2, any);
    named
}

fn extensions(obj: &serde_json::Map<String, Value>, field: u32, out: &mut Msg) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        out.message(field, vendor_extension(k, v));
    }
}

/// ParametersItem → Parameter → NonBodyParameter → QueryParameterSubSchema.
fn query_parameter(p: &Value) -> Msg {
    let mut q = Msg::default();
    q.string(2, p["in"].as_str().unwrap_or("query"));
    q.string(4, p["name"].as_str().unwrap_or(""));
    q.string(6, p["type"].as_str().unwrap_or("string"));
    q.boolean(20, p["uniqueItems"].as_bool().unwrap_or(false));
    let mut non_body = Msg::default();
    non_body.message(3, q);
    let mut param = Msg::default();
    param.message(2, non_body);
    let mut item = Msg::default();
    item.message(1, param);
    item
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(5, op["operationId"].as_str().unwrap_or(""));
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.message(8, query_parameter(p));
    }
    let mut responses = Msg::default();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut response = Msg::default();
        response.string(1, r["description"].as_str().unwrap_or(""));
        let mut value = Msg::default();
        value.message(1, response);
        let mut named = Msg::default();
        named.string(1, code);
        named.message(2, value);
        responses.message(1, named);
    }
    m.message(9, responses);
    if let Some(obj) = op.as_object() {
        extensions(obj, 13, &mut m);
    }
    m
}

/// Encode a Swagger 2.0 JSON document.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut d = Msg::default();
    d.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Msg::default();
    info.string(1, doc["info"]["title"].as_str().unwrap_or(""));
    info.string(2, doc["info"]["version"].as_str().unwrap_or(""));
    d.message(2, info);
    let mut paths = Msg::default();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut pi = Msg::default();
        for (verb, field) in [
            ("get", 2),
            ("put", 3),
            ("post", 4),
            ("delete", 5),
            ("patch", 8),
        ] {
            if let Some(op) = item.get(verb) {
                pi.message(field, operation(op));
            }
        }
        let mut named = Msg::default();
        named.string(1, path);
        named.message(2, pi);
        paths.message(2, named);
    }
    d.message(8, paths);
    d.message(9, Msg::default());
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_strings_encode_like_protobuf() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, vec![0xac, 0x02]);
        let mut m = Msg::default();
        m.string(1, "2.0");
        assert_eq!(m.0, vec![0x0a, 3, b'2', b'.', b'0']);
    }

    #[test]
    fn document_carries_paths_and_gvk_extensions() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.5"},
            "paths": {"/api/v1/namespaces/{namespace}/configmaps/{name}": {"patch": {
                "operationId": "patchConfigMap",
                "x-kubernetes-group-version-kind": {"group": "", "kind": "ConfigMap", "version": "v1"},
                "parameters": [{"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true}],
                "responses": {"200": {"description": "OK"}},
            }}},
        });
        let bytes = encode(&doc);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains("kind: ConfigMap"));
        assert!(text.contains("fieldValidation"));
        assert!(text.contains("/api/v1/namespaces/{namespace}/configmaps/{name}"));
    }
}
