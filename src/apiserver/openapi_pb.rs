//! The OpenAPI v2 document in gnostic's protobuf form
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which
//! client-go asks for and accepts no substitute for.
//!
//! Encoded from the JSON document, so there is one source of truth. Only
//! the parts the JSON document has are encoded: info, paths, operations,
//! query and body parameters, responses, definitions and vendor extensions.

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

    fn double(&mut self, field: u32, v: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// `Any { yaml = 2 }`: gnostic carries free-form values as YAML.
fn any(value: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &serde_yaml_ng::to_string(value).unwrap_or_default());
    m
}

/// `NamedAny { name = 1; Any value = 2 }`.
fn vendor_extension(name: &str, value: &Value) -> Msg {
    let mut named = Msg::default();
    named.string(1, name);
    named.message(2, any(value));
    named
}

fn extensions(obj: &serde_json::Map<String, Value>, field: u32, out: &mut Msg) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        out.message(field, vendor_extension(k, v));
    }
}

/// ParametersItem → Parameter → BodyParameter, or → NonBodyParameter →
/// QueryParameterSubSchema.
fn parameter(p: &Value) -> Msg {
    let mut param = Msg::default();
    if p["in"] == "body" {
        let mut body = Msg::default();
        body.string(2, p["name"].as_str().unwrap_or(""));
        body.string(3, "body");
        body.boolean(4, p["required"].as_bool().unwrap_or(false));
        body.message(5, schema(&p["schema"]));
        param.message(1, body);
    } else {
        let mut q = Msg::default();
        q.string(2, p["in"].as_str().unwrap_or("query"));
        q.string(4, p["name"].as_str().unwrap_or(""));
        q.string(6, p["type"].as_str().unwrap_or("string"));
        q.boolean(20, p["uniqueItems"].as_bool().unwrap_or(false));
        let mut non_body = Msg::default();
        non_body.message(3, q);
        param.message(2, non_body);
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(5, op["operationId"].as_str().unwrap_or(""));
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.message(8, parameter(p));
    }
    let mut responses = Msg::default();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut response = Msg::default();
        response.string(1, r["description"].as_str().unwrap_or(""));
        if let Some(s) = r.get("schema") {
            // SchemaItem { Schema schema = 1 }
            let mut item = Msg::default();
            item.message(1, schema(s));
            response.message(2, item);
        }
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

/// `Schema`. Swagger 2.0 has no `oneOf`/`anyOf`/`not`; like upstream's
/// conversion, those are left out.
fn schema(s: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = s.as_object() else {
        return m;
    };
    let str_of = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
    m.string(1, str_of("$ref"));
    m.string(2, str_of("format"));
    m.string(3, str_of("title"));
    m.string(4, str_of("description"));
    if let Some(d) = o.get("default") {
        m.message(5, any(d));
    }
    for (field, key) in [(6, "multipleOf"), (7, "maximum"), (9, "minimum")] {
        if let Some(v) = o.get(key).and_then(Value::as_f64) {
            m.double(field, v);
        }
    }
    for (field, key) in [
        (8, "exclusiveMaximum"),
        (10, "exclusiveMinimum"),
        (16, "uniqueItems"),
        (27, "readOnly"),
    ] {
        m.boolean(field, o.get(key).and_then(Value::as_bool).unwrap_or(false));
    }
    for (field, key) in [
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ] {
        if let Some(v) = o.get(key).and_then(Value::as_i64) {
            m.key(field, 0);
            m.varint(v as u64);
        }
    }
    m.string(13, str_of("pattern"));
    for r in o
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or(""));
    }
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Msg::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(v @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(v));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(t) = o.get("type").and_then(Value::as_str) {
        let mut ty = Msg::default();
        ty.string(1, t);
        m.message(22, ty);
    }
    if let Some(items) = o.get("items") {
        let mut item = Msg::default();
        match items {
            Value::Array(a) => a.iter().for_each(|i| item.message(1, schema(i))),
            i => item.message(1, schema(i)),
        }
        m.message(23, item);
    }
    for a in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(a));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        m.message(25, named_schemas(props));
    }
    if let Some(e) = o.get("example") {
        m.message(30, any(e));
    }
    extensions(o, 31, &mut m);
    m
}

/// `Properties` and `Definitions`: `repeated NamedSchema = 1`.
fn named_schemas(map: &serde_json::Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (name, s) in map {
        let mut named = Msg::default();
        named.string(1, name);
        named.message(2, schema(s));
        m.message(1, named);
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
    let definitions = doc["definitions"].as_object().map(named_schemas);
    d.message(9, definitions.unwrap_or_default());
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
