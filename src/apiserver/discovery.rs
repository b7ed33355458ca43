//! Discovery documents, derived from the resource registry.

use axum::response::Response;
use http::HeaderMap;
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

/// The response group, version and kind and the verbs of one subresource,
/// as upstream lists them. An empty group and version mean the resource's own.
fn sub_info(
    info: &ResourceInfo,
    sub: Sub,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
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
    let (group, version) = match sub {
        Sub::Scale => ("autoscaling", "v1"),
        Sub::Action("eviction") => ("policy", "v1"),
        Sub::Action("token") => ("authentication.k8s.io", "v1"),
        _ => ("", ""),
    };
    (group, version, kind, verbs)
}

/// The verbs and kind of one subresource, as upstream lists them.
fn sub_entry(info: &ResourceInfo, sub: Sub) -> Value {
    let (group, version, kind, verbs) = sub_info(info, sub);
    let mut e = json!({
        "name": format!("{}/{}", info.plural, sub.name()),
        "singularName": "",
        "namespaced": info.namespaced(),
        "kind": kind,
        "verbs": verbs,
    });
    if !group.is_empty() {
        e["group"] = json!(group);
        e["version"] = json!(version);
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
    for info in registry::all()
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

/// The media type of aggregated discovery at one version (v2 or v2beta1).
pub fn aggregated_media_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Whether the client's Accept header asks first for aggregated discovery,
/// and at which version ("v2" or "v2beta1"). Plain JSON earlier in the list
/// (or no Accept header) keeps the legacy documents.
pub fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    for r in crate::apiserver::negotiate::media_ranges(headers) {
        if !matches!(r.mime, "application/json" | "application/*" | "*/*") {
            continue;
        }
        match (r.as_, r.group, r.version) {
            ("", _, _) => return None,
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2") => return Some("v2"),
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2beta1") => return Some("v2beta1"),
            _ => continue,
        }
    }
    None
}

fn aggregated_resource(info: &ResourceInfo) -> Value {
    let mut r = json!({
        "resource": info.plural,
        "responseKind": { "group": info.group, "version": info.version, "kind": info.kind },
        "scope": if info.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular(),
        "verbs": info.verbs,
    });
    if !info.short_names.is_empty() {
        r["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        r["categories"] = json!(info.categories);
    }
    let subs: Vec<Value> = info
        .subresources
        .iter()
        .map(|sub| {
            let (group, version, kind, verbs) = sub_info(info, *sub);
            let (group, version) = if group.is_empty() {
                (info.group, info.version)
            } else {
                (group, version)
            };
            json!({
                "subresource": sub.name(),
                "responseKind": { "group": group, "version": version, "kind": kind },
                "verbs": verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = registry::group_versions(group)
        .iter()
        .map(|v| {
            let resources: Vec<Value> = registry::all()
                .iter()
                .filter(|r| r.group == group && r.version == *v)
                .map(|r| aggregated_resource(r))
                .collect();
            json!({ "version": v, "resources": resources, "freshness": "Current" })
        })
        .collect();
    let mut metadata = json!({ "creationTimestamp": null });
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({ "metadata": metadata, "versions": versions })
}

/// The aggregated discovery document: the core group for /api, the named
/// groups for /apis. Versions are listed preferred first.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        registry::groups()
            .iter()
            .map(|g| aggregated_group(g))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// The aggregated discovery response for /api (core) or /apis, when the
/// client asked for it.
pub fn aggregated_response(core: bool, headers: &HeaderMap) -> Option<Response> {
    let version = aggregated_version(headers)?;
    let body = serde_json::to_vec(&aggregated(core, version)).ok()?;
    Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, aggregated_media_type(version))
        .header(http::header::VARY, "Accept")
        .body(axum::body::Body::from(body))
        .ok()
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

    #[test]
    fn aggregated_documents_have_upstream_shape() {
        let core = aggregated(true, "v2");
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        let pods = v1["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        assert_eq!(pods["responseKind"]["version"], "v1");
        assert_eq!(pods["shortNames"][0], "po");
        let subs = pods["subresources"].as_array().expect("subresources");
        let eviction = subs
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .expect("eviction");
        assert_eq!(eviction["responseKind"]["group"], "policy");
        assert_eq!(eviction["verbs"][0], "create");

        let named = aggregated(false, "v2beta1");
        assert_eq!(named["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let groups = named["items"].as_array().expect("items");
        assert!(groups.iter().all(|g| g["metadata"]["name"] != ""));
        let auto = groups
            .iter()
            .find(|g| g["metadata"]["name"] == "autoscaling")
            .expect("autoscaling");
        assert_eq!(auto["versions"][0]["version"], "v2");
        let apps = groups
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        assert_eq!(deploy["categories"][0], "all");
        let scale = deploy["subresources"]
            .as_array()
            .expect("subs")
            .iter()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        assert_eq!(scale["responseKind"]["kind"], "Scale");
    }

    #[test]
    fn accept_header_picks_aggregated_or_legacy() {
        let with = |a: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::ACCEPT, a.parse().expect("header"));
            aggregated_version(&h)
        };
        assert_eq!(
            with("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
            Some("v2")
        );
        assert_eq!(
            with("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
            Some("v2beta1")
        );
        assert_eq!(with("application/json, */*"), None);
        assert_eq!(aggregated_version(&HeaderMap::new()), None);
    }
}
