//! Table columns of custom resources: Name, then the CRD's
//! additionalPrinterColumns (Age when it declares none), as upstream's
//! CRD table convertor prints them.

use serde_json::{json, Value};

use super::jsonpath::JsonPath;
use crate::api::crd::{Column, CustomVersion};
use crate::apiserver::printers;
use crate::apiserver::table;

fn default_columns() -> Vec<Column> {
    vec![Column {
        name: "Age".into(),
        ty: "date".into(),
        format: String::new(),
        description: printers::CREATED_DOC.into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

fn columns(custom: &CustomVersion) -> Vec<Column> {
    if custom.columns.is_empty() {
        default_columns()
    } else {
        custom.columns.clone()
    }
}

pub fn definitions(custom: &CustomVersion) -> Vec<Value> {
    let mut out = vec![printers::NAME.to_json()];
    out.extend(columns(custom).iter().map(|c| {
        json!({
            "name": c.name,
            "type": c.ty,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        })
    }));
    out
}

/// A value as a string column shows it (jsonpath's text output).
fn text(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(s),
        other => json!(other.to_string()),
    }
}

/// One cell of a typed column; null when the value does not fit the type.
fn cell(ty: &str, v: &Value) -> Value {
    match (ty, v) {
        ("string", v) => text(v),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        ("number", Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(_) => json!(table::age(s)),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

pub fn cells(custom: &CustomVersion, obj: &Value) -> Vec<Value> {
    let mut out = vec![json!(crate::apiserver::object::name(obj).unwrap_or(""))];
    for c in columns(custom) {
        let found = JsonPath::parse(&c.json_path)
            .ok()
            .and_then(|p| p.find(obj).first().map(|v| (*v).clone()));
        out.push(match found {
            Some(v) if !v.is_null() => cell(&c.ty, &v),
            _ => Value::Null,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crd::CustomVersion;

    fn version(columns: Vec<Column>) -> CustomVersion {
        CustomVersion {
            crd: "crontabs.example.com".into(),
            singular: "crontab".into(),
            list_kind: "CronTabList".into(),
            storage_version: "v1",
            schema: None,
            openapi: None,
            columns,
            scale: None,
            terminating: false,
            ssa_types: Default::default(),
        }
    }

    #[test]
    fn declared_columns_and_the_default_age() {
        let col = |name: &str, ty: &str, path: &str| Column {
            name: name.into(),
            ty: ty.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.into(),
        };
        let v = version(vec![
            col("Spec", "string", ".spec.cronSpec"),
            col("Replicas", "integer", ".spec.replicas"),
            col(
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
            ),
            col("Missing", "string", ".spec.nothing"),
        ]);
        let o = json!({"metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * *", "replicas": 2},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            cells(&v, &o),
            [
                json!("a"),
                json!("* * * * *"),
                json!(2),
                json!("True"),
                Value::Null
            ]
        );
        let names: Vec<Value> = definitions(&v).iter().map(|d| d["name"].clone()).collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Ready", "Missing"]);

        let plain = version(Vec::new());
        let defs = definitions(&plain);
        assert_eq!(defs[1]["name"], "Age");
        assert_eq!(defs[1]["type"], "date");
        let o = json!({"metadata": {"name": "b", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        assert!(cells(&plain, &o)[1]
            .as_str()
            .is_some_and(|s| s.ends_with('y') || s.ends_with('d')));
    }
}
