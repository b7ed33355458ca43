//! Server-side printing: meta.k8s.io Tables and metadata-only views.

use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;
use crate::apiserver::custom::columns;
use crate::apiserver::{object, printers};

/// Which object each table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Include {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// Age as kubectl prints it: 5s, 3m, 2h, 4d, 1y.
pub fn age(created: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    human_duration(secs)
}

/// Upstream's duration.HumanDuration, which kubectl uses for AGE.
pub fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        let mm = m % 60;
        if mm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{mm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        let hh = h % 24;
        if hh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{hh}h")
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        let dd = d % 365;
        if dd == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{dd}d")
        }
    } else {
        format!("{}y", d / 365)
    }
}

/// The metadata-only view of an object.
pub fn partial(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

pub fn partial_list(items: &[Value], list_meta: Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "items": items.iter().map(|o| partial(o, version)).collect::<Vec<_>>(),
    })
}

/// A Table of objects of one kind: the kind's printer for built-in kinds,
/// the CRD's printer columns for custom ones.
pub fn table_for(
    info: &ResourceInfo,
    items: &[Value],
    list_meta: Value,
    version: &str,
    include: Include,
) -> Value {
    let custom = info.custom.as_deref();
    let printer = match custom {
        Some(_) => None,
        None => printers::lookup(info.group, info.kind),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells = match (printer, custom) {
                (Some(p), _) => (p.cells)(o),
                (None, Some(c)) => columns::cells(c, o),
                (None, None) => {
                    let name = object::name(o).unwrap_or("");
                    let created = object::meta_str(o, "creationTimestamp").unwrap_or("");
                    vec![json!(name), json!(age(created))]
                }
            };
            let mut row = json!({ "cells": cells });
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial(o, version),
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let columns: Vec<Value> = match (printer, custom) {
        (Some(p), _) => p.columns.iter().map(printers::Col::to_json).collect(),
        (None, Some(c)) => columns::definitions(c),
        (None, None) => vec![printers::NAME.to_json(), printers::AGE.to_json()],
    };
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(400 * 86400), "400d");
    }

    #[test]
    fn table_has_rows_and_objects() {
        let o = json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        let configmaps = crate::api::registry::lookup("", "v1", "configmaps").expect("cm");
        let widgets = ResourceInfo {
            group: "example.com",
            kind: "Widget",
            ..(*configmaps).clone()
        };
        let t = table_for(
            &widgets,
            &[o],
            json!({"resourceVersion": "5"}),
            "v1",
            Include::Metadata,
        );
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
    }

    #[test]
    fn tables_use_the_kind_printer() {
        let o = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let pods = crate::api::registry::lookup("", "v1", "pods").expect("pods");
        let t = table_for(&pods, &[o], json!({}), "v1", Include::None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(t["rows"][0]["cells"].as_array().map(Vec::len), Some(9));
        assert_eq!(t["rows"][0]["cells"][2], "Pending");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    }
}
