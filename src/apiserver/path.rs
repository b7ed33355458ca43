//! Turns a request path into what it addresses.

use std::sync::Arc;

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::query::percent_decode;
use crate::apiserver::status::{ApiError, ApiResult};

/// What a path under /api or /apis names.
#[derive(Debug, Clone)]
pub enum Target {
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: the named groups.
    Groups,
    /// `/apis/GROUP`.
    Group(String),
    /// `/api/v1` or `/apis/GROUP/VERSION`: the resources of one group version.
    GroupVersion(String, String),
    /// A resource, a collection or a subresource.
    Resource(ResourceTarget),
}

#[derive(Debug, Clone)]
pub struct ResourceTarget {
    pub info: Arc<ResourceInfo>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Segments after the subresource (`pods/x/proxy/some/path`).
    pub rest: Vec<String>,
    /// Reached through the deprecated `/watch/` prefix.
    pub legacy_watch: bool,
}

pub fn parse(path: &str) -> ApiResult<Target> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["api"] => Ok(Target::CoreVersions),
        ["api", v] => known_gv("", v).map(|_| Target::GroupVersion(String::new(), v.to_string())),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis"] => Ok(Target::Groups),
        ["apis", g] => {
            if registry::group_versions(g).is_empty() {
                Err(ApiError::no_route())
            } else {
                Ok(Target::Group(g.to_string()))
            }
        }
        ["apis", g, v] => {
            known_gv(g, v).map(|_| Target::GroupVersion(g.to_string(), v.to_string()))
        }
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn known_gv(group: &str, version: &str) -> ApiResult<()> {
    if registry::group_versions(group).contains(&version) {
        Ok(())
    } else {
        Err(ApiError::no_route())
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    known_gv(group, version)?;
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let find =
        |plural: &str| registry::lookup(group, version, plural).ok_or_else(ApiError::no_route);
    // `namespaces/NS/PLURAL/...` addresses a namespaced resource; otherwise
    // `namespaces` is itself the (cluster-scoped) resource.
    let (info, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry::lookup(group, version, plural).is_some_and(|i| i.namespaced()) =>
        {
            (find(plural)?, Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => (find(plural)?, None, tail),
        [] => return Err(ApiError::no_route()),
    };
    if namespace.is_none() && info.namespaced() && !tail.is_empty() {
        // A namespaced object must be addressed inside its namespace.
        return Err(ApiError::no_route());
    }
    let (name, subresource, more) = match tail {
        [] => (None, None, &[][..]),
        [name] => (Some(name.to_string()), None, &[][..]),
        [name, sub, more @ ..] => (Some(name.to_string()), Some(sub.to_string()), more),
    };
    if let Some(sub) = &subresource {
        match info.subresource(sub) {
            Some(registry::Sub::Stream(_)) => {}
            Some(_) if more.is_empty() => {}
            _ => return Err(ApiError::no_route()),
        }
    }
    Ok(Target::Resource(ResourceTarget {
        info,
        namespace,
        name,
        subresource,
        rest: more.iter().map(|s| s.to_string()).collect(),
        legacy_watch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceTarget {
        match parse(path) {
            Ok(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let r = res("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(r.info.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("log"));

        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(r.info.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("kube-system"));

        let r = res("/api/v1/namespaces/kube-system/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));

        let r = res("/apis/apps/v1/deployments");
        assert!(r.namespace.is_none() && r.name.is_none());

        let r = res("/api/v1/watch/namespaces/default/configmaps");
        assert!(r.legacy_watch);
        assert_eq!(r.info.plural, "configmaps");
    }

    #[test]
    fn unknown_things_are_not_found() {
        for p in [
            "/api/v2",
            "/api/v1/widgets",
            "/apis/nope",
            "/apis/apps/v9",
            "/api/v1/pods/x",
            "/api/v1/namespaces/default/pods/x/nosuch",
            "/api/v1/namespaces/default/configmaps/x/status",
        ] {
            assert!(parse(p).is_err(), "{p}");
        }
    }
}
