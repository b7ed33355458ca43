//! Served kinds from stored CustomResourceDefinitions: one `ResourceInfo`
//! per served version, carrying what the definition says about it.

pub mod schema;

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::api::registry::{intern, intern_list, ResourceInfo, Scope, Sub, ALL_VERBS};
pub use schema::Schema;

/// The finalizer that holds a deleted CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// An additional printer column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// Where the scale subresource reads and writes (JSON paths like `.spec.replicas`).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served version of a custom resource.
#[derive(Debug)]
pub struct CustomVersion {
    /// The definition's name, `<plural>.<group>`.
    pub crd: String,
    pub singular: String,
    pub list_kind: String,
    /// Objects are stored at this version, whatever version wrote them.
    pub storage_version: &'static str,
    pub schema: Option<Schema>,
    /// The openAPIV3Schema as written, for the OpenAPI documents.
    pub openapi: Option<Value>,
    pub columns: Vec<Column>,
    pub scale: Option<ScalePaths>,
    /// The definition is being deleted: no new objects.
    pub terminating: bool,
    /// Its server-side apply type, built on first use.
    pub ssa_types: crate::apiserver::CustomTypes,
}

/// The status condition of the given type, if set to True.
pub fn condition_true(crd: &Value, ty: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// Set a status condition, keeping its lastTransitionTime when the status
/// does not change. Returns whether anything changed.
pub fn set_condition(crd: &mut Value, ty: &str, status: bool, reason: &str, message: &str) -> bool {
    let status = if status { "True" } else { "False" };
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = serde_json::json!({});
    }
    let conds = &mut crd["status"]["conditions"];
    if !conds.is_array() {
        *conds = Value::Array(Vec::new());
    }
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    let now = crate::apiserver::object::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(c) => {
            if c["status"] == status && c["reason"] == reason && c["message"] == message {
                return false;
            }
            if c["status"] != status {
                c["lastTransitionTime"] = Value::String(now);
            }
            c["status"] = Value::String(status.into());
            c["reason"] = Value::String(reason.into());
            c["message"] = Value::String(message.into());
        }
        None => list.push(serde_json::json!({
            "type": ty, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message,
        })),
    }
    true
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn columns(version: &Value) -> Vec<Column> {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| Column {
                    name: str_at(c, "/name").to_string(),
                    ty: str_at(c, "/type").to_string(),
                    format: str_at(c, "/format").to_string(),
                    description: str_at(c, "/description").to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: str_at(c, "/jsonPath").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The kinds a stored CRD serves: none until its names are accepted, then
/// one per served version, named by `status.acceptedNames`.
pub fn served_kinds(crd: &Value) -> Vec<ResourceInfo> {
    if !condition_true(crd, "NamesAccepted") && !condition_true(crd, "Established") {
        return Vec::new();
    }
    let names = crd
        .pointer("/status/acceptedNames")
        .cloned()
        .unwrap_or_default();
    let (plural, kind) = (str_at(&names, "/plural"), str_at(&names, "/kind"));
    let group = str_at(crd, "/spec/group");
    if plural.is_empty() || kind.is_empty() || group.is_empty() {
        return Vec::new();
    }
    let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
        return Vec::new();
    };
    let storage = versions
        .iter()
        .find(|v| v["storage"] == true)
        .map(|v| str_at(v, "/name"))
        .unwrap_or("");
    let scope = match str_at(crd, "/spec/scope") {
        "Cluster" => Scope::Cluster,
        _ => Scope::Namespaced,
    };
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match str_at(&names, "/listKind") {
        "" => format!("{kind}List"),
        s => s.to_string(),
    };
    let terminating = crate::apiserver::object::is_deleting(crd);
    let mut out = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == true) {
        let name = str_at(v, "/name");
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .and_then(|s| Schema::parse(s).ok());
        let has_status = v
            .pointer("/subresources/status")
            .is_some_and(Value::is_object);
        let scale = v
            .pointer("/subresources/scale")
            .filter(|s| s.is_object())
            .map(|s| ScalePaths {
                spec_replicas: str_at(s, "/specReplicasPath").to_string(),
                status_replicas: str_at(s, "/statusReplicasPath").to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(String::from),
            });
        let subresources: &'static [Sub] = match (has_status, scale.is_some()) {
            (true, true) => &[Sub::Status, Sub::Scale],
            (true, false) => &[Sub::Status],
            (false, true) => &[Sub::Scale],
            (false, false) => &[],
        };
        out.push(ResourceInfo {
            group: intern(group),
            version: intern(name),
            kind: intern(kind),
            plural: intern(plural),
            scope,
            verbs: ALL_VERBS,
            short_names: intern_list(&string_list(names.get("shortNames"))),
            categories: intern_list(&string_list(names.get("categories"))),
            subresources,
            has_status,
            custom: Some(Arc::new(CustomVersion {
                crd: crate::apiserver::object::name(crd)
                    .unwrap_or("")
                    .to_string(),
                singular: singular.clone(),
                list_kind: list_kind.clone(),
                storage_version: intern(storage),
                schema,
                openapi: v.pointer("/schema/openAPIV3Schema").cloned(),
                columns: columns(v),
                scale,
                terminating,
                ssa_types: Default::default(),
            })),
        });
    }
    out
}

/// Upstream's kube-aware version order: GA before beta before alpha, higher
/// numbers first; names that are not Kubernetes versions last, by name.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (class, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((class, major, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_sort_like_upstream() {
        let mut v = vec!["v1alpha1", "foo", "v1", "v2beta1", "v1beta2", "v2", "v10"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn only_accepted_names_are_served() {
        let mut crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}}},
                    {"name": "v1beta1", "served": false, "storage": false}]},
        });
        assert!(served_kinds(&crd).is_empty());
        crd["status"] = json!({
            "conditions": [{"type": "NamesAccepted", "status": "True"}],
            "acceptedNames": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
        });
        let kinds = served_kinds(&crd);
        assert_eq!(kinds.len(), 1);
        let w = &kinds[0];
        assert_eq!(
            (w.group, w.version, w.plural),
            ("example.com", "v1", "widgets")
        );
        assert_eq!(w.short_names, ["wd"]);
        assert!(w.has_status);
        let custom = w.custom.as_ref().expect("custom");
        assert_eq!(custom.list_kind, "WidgetList");
        assert_eq!(custom.storage_version, "v1");
    }
}
