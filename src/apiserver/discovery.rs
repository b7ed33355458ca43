//! Discovery documents, derived from the resource registry.

use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo, Sub};

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_doc(group: &str) -> Value {
    let versions: Vec<Value> = registry::group_versions(group)
        .iter()
        .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(json!({}));
    json!({ "name": group, "versions": versions, "preferredVersion": preferred })
}

pub fn groups() -> Value {
    let groups: Vec<Value> = registry::groups().iter().map(|g| group_doc(g)).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

pub fn group(name: &str) -> Value {
    let mut doc = group_doc(name);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    doc
}

/// The verbs and kind of one subresource, as upstream lists them.
fn sub_entry(info: &ResourceInfo, sub: Sub) -> Value {
    let (kind, verbs): (&str, &[&str]) = match sub {
        Sub::Status => (info.kind, &["get", "patch", "update"]),
        Sub::Scale => ("Scale", &["get", "patch", "update"]),
        Sub::Stream("log") => ("Pod", &["get"]),
        Sub::Stream("exec") => ("PodExecOptions", &["create", "get"]),
        Sub::Stream("attach") => ("PodAttachOptions", &["create", "get"]),
        Sub::Stream("portforward") => ("PodPortForwardOptions", &["create", "get"]),
        Sub::Stream(_) => (
            match info.kind {
                "Node" => "NodeProxyOptions",
                "Service" => "ServiceProxyOptions",
                _ => "PodProxyOptions",
            },
            &["create", "delete", "get", "patch", "update"],
        ),
        Sub::Action("binding") => ("Binding", &["create"]),
        Sub::Action("eviction") => ("Eviction", &["create"]),
        Sub::Action("token") => ("TokenRequest", &["create"]),
        Sub::Action("finalize") => (info.kind, &["update"]),
        Sub::Action("approval") => (info.kind, &["get", "patch", "update"]),
        Sub::Action(_) => (info.kind, &["get", "patch", "update"]),
    };
    let mut e = json!({
        "name": format!("{}/{}", info.plural, sub.name()),
        "singularName": "",
        "namespaced": info.namespaced(),
        "kind": kind,
        "verbs": verbs,
    });
    match (sub, kind) {
        (Sub::Scale, _) => {
            e["group"] = json!("autoscaling");
            e["version"] = json!("v1");
        }
        (Sub::Action("eviction"), _) => {
            e["group"] = json!("policy");
            e["version"] = json!("v1");
        }
        (Sub::Action("token"), _) => {
            e["group"] = json!("authentication.k8s.io");
            e["version"] = json!("v1");
        }
        _ => {}
    }
    e
}

pub fn resource_list(group: &str, version: &str) -> Value {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for info in registry::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut e = json!({
            "name": info.plural,
            "singularName": info.singular(),
            "namespaced": info.namespaced(),
            "kind": info.kind,
            "verbs": info.verbs,
        });
        if !info.short_names.is_empty() {
            e["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            e["categories"] = json!(info.categories);
        }
        resources.push(e);
        for sub in info.subresources {
            resources.push(sub_entry(info, *sub));
        }
    }
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_pods_and_subresources() {
        let doc = resource_list("", "v1");
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/log",
            "pods/exec",
            "namespaces",
            "services",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn groups_have_preferred_versions() {
        let doc = groups();
        let auto = doc["groups"]
            .as_array()
            .expect("array")
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .expect("autoscaling")
            .clone();
        assert_eq!(auto["preferredVersion"]["version"], "v2");
    }
}
