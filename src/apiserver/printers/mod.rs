//! Per-kind table printers with upstream kube-apiserver's columns
//! (k8s.io/kubernetes/pkg/printers/internalversion/printers.go).
//!
//! The server always produces every column, wide ones (priority 1) included;
//! kubectl shows those only with `-o wide`.

use serde_json::{json, Map, Value};

use crate::apiserver::table;

mod apps;
mod core;
mod misc;
mod pods;

pub use pods::pod_cells;

/// One column definition of a Table.
pub struct Col {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: u8,
}

impl Col {
    pub const fn new(name: &'static str, ty: &'static str, description: &'static str) -> Col {
        Col {
            name,
            ty,
            format: "",
            description,
            priority: 0,
        }
    }

    /// The same column, shown only with `-o wide`.
    pub const fn wide(self) -> Col {
        Col {
            priority: 1,
            ..self
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The Name column every printer starts with.
pub const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
/// The Age column.
pub const AGE: Col = Col::new("Age", "string", CREATED_DOC);
/// Upstream's "Created At" column (roles, cluster roles, limit ranges).
pub const CREATED_AT: Col = Col {
    name: "Created At",
    ty: "date",
    format: "",
    description: CREATED_DOC,
    priority: 0,
};
pub const CONTAINERS: Col = Col::new(
    "Containers",
    "string",
    "Names of each container in the template.",
)
.wide();
pub const IMAGES: Col = Col::new(
    "Images",
    "string",
    "Images referenced by each container in the template.",
)
.wide();

/// Columns and the function computing one row's cells.
pub struct Printer {
    pub columns: &'static [Col],
    pub cells: fn(&Value) -> Vec<Value>,
}

/// The printer of a kind, by API group and kind.
pub fn lookup(group: &str, kind: &str) -> Option<&'static Printer> {
    pods::lookup(group, kind)
        .or_else(|| apps::lookup(group, kind))
        .or_else(|| core::lookup(group, kind))
        .or_else(|| misc::lookup(group, kind))
}

// ---- helpers shared by the printers ----

/// The value at a path of object keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

pub fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).as_i64().unwrap_or(0)
}

pub fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub fn len_at(v: &Value, path: &[&str]) -> usize {
    match at(v, path) {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    }
}

pub fn name(obj: &Value) -> Value {
    json!(str_at(obj, &["metadata", "name"]))
}

/// translateTimestampSince: "<unknown>" for no time.
pub fn since(ts: &str) -> String {
    if ts.is_empty() {
        "<unknown>".into()
    } else {
        table::age(ts)
    }
}

pub fn age(obj: &Value) -> Value {
    json!(since(str_at(obj, &["metadata", "creationTimestamp"])))
}

/// The string, or "<none>" when empty.
pub fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// labels.FormatLabels: sorted k=v pairs, or "<none>".
pub fn format_labels(m: &Value) -> String {
    let Some(m) = m.as_object() else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    or_none(&pairs.join(","))
}

/// A metav1.LabelSelector as a selector string, or "<none>".
pub fn format_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        parts.extend(
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))),
        );
    }
    for e in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(e, &["key"]);
        let mut values: Vec<&str> = arr_at(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        parts.push(match str_at(e, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    parts.sort();
    or_none(&parts.join(","))
}

/// Container names and images of a pod template, comma-joined.
pub fn template_containers(obj: &Value) -> (Value, Value) {
    let cs = arr_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, &["image"])).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// Keys of a JSON object map, sorted.
pub fn sorted_keys(m: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
    k.sort();
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_format_like_upstream() {
        assert_eq!(
            format_selector(&json!({"matchLabels": {"b": "2", "a": "1"}})),
            "a=1,b=2"
        );
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(format_labels(&json!({"app": "web"})), "app=web");
    }

    #[test]
    fn every_printer_starts_with_name_or_last_seen() {
        for (g, k) in [
            ("", "Pod"),
            ("apps", "Deployment"),
            ("", "Service"),
            ("", "Event"),
            ("rbac.authorization.k8s.io", "Role"),
        ] {
            let p = lookup(g, k).expect(k);
            assert!(matches!(p.columns[0].name, "Name" | "Last Seen"), "{k}");
        }
    }
}
