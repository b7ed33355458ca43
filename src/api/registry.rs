//! The resource registry: every kind the API serves, as one table.
//!
//! Routing, discovery, OpenAPI and storage keys are all derived from this
//! table, so serving a new kind is one entry here, not a new handler.
//!
//! Built-in kinds are the static table; kinds that CustomResourceDefinitions
//! define are swapped in and out at run time (`set_custom`). Their names are
//! interned (`intern`): one leak per distinct string, however often a
//! definition is rewritten, so every kind keeps `&'static str` names.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use crate::api::crd::CustomVersion;

/// Verbs a resource supports, in the order discovery lists them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of read-mostly resources that clients only create (e.g. bindings).
pub const CREATE_ONLY: &[&str] = &["create"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A subresource served beside the main resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `/status`: get, update and patch of the status only.
    Status,
    /// `/scale`: an autoscaling/v1 Scale view of spec.replicas.
    Scale,
    /// Pod streams that need a node: log, exec, attach, portforward, proxy.
    Stream(&'static str),
    /// `/binding` for pods, `/eviction` for pods, `/finalize` for namespaces.
    Action(&'static str),
}

impl Sub {
    pub fn name(&self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Stream(n) | Sub::Action(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub scope: Scope,
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Sub],
    /// Whether spec and status are separated (status changes go through
    /// `/status`, and spec changes bump metadata.generation).
    pub has_status: bool,
    /// What its CustomResourceDefinition says about this version; None for
    /// built-in kinds.
    pub custom: Option<Arc<CustomVersion>>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn subresource(&self, name: &str) -> Option<Sub> {
        self.subresources.iter().copied().find(|s| s.name() == name)
    }

    pub fn singular(&self) -> String {
        match &self.custom {
            Some(c) => c.singular.clone(),
            None => self.kind.to_lowercase(),
        }
    }

    /// The kind of a list of these objects.
    pub fn list_kind(&self) -> String {
        match &self.custom {
            Some(c) => c.list_kind.clone(),
            None => format!("{}List", self.kind),
        }
    }

    /// The key prefix of this resource's objects. It leaves out the version,
    /// so one kind served at several versions shares its objects.
    pub fn storage_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{}/{}/", group, self.plural)
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced() => format!("{}{}/{}", self.storage_prefix(), ns, name),
            _ => format!("{}{}", self.storage_prefix(), name),
        }
    }

    /// The key prefix of one namespace's objects (or all, for None).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced() => format!("{}{}/", self.storage_prefix(), ns),
            _ => self.storage_prefix(),
        }
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const STATUS: &[Sub] = &[Sub::Status];
const STATUS_SCALE: &[Sub] = &[Sub::Status, Sub::Scale];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $scope:ident, $short:expr, $cats:expr, $subs:expr, $has_status:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            scope: Scope::$scope,
            verbs: ALL_VERBS,
            short_names: $short,
            categories: $cats,
            subresources: $subs,
            has_status: $has_status,
            custom: None,
        }
    };
}

/// The served resources. Order is discovery order within a group version.
pub static RESOURCES: &[ResourceInfo] = &[
    // core/v1
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        Cluster,
        &["ns"],
        NONE,
        &[Sub::Status, Sub::Action("finalize")],
        true
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        Namespaced,
        &["po"],
        ALL,
        &[
            Sub::Status,
            Sub::Action("binding"),
            Sub::Action("eviction"),
            Sub::Stream("log"),
            Sub::Stream("exec"),
            Sub::Stream("attach"),
            Sub::Stream("portforward"),
            Sub::Stream("proxy"),
            Sub::Action("ephemeralcontainers"),
        ],
        true
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        Namespaced,
        &["svc"],
        ALL,
        &[Sub::Status, Sub::Stream("proxy")],
        true
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        Namespaced,
        &["ep"],
        NONE,
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        Namespaced,
        &["cm"],
        NONE,
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        Namespaced,
        &["sa"],
        NONE,
        &[Sub::Action("token")],
        false
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        Cluster,
        &["no"],
        NONE,
        &[Sub::Status, Sub::Stream("proxy")],
        true
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        Namespaced,
        &["ev"],
        NONE,
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        Cluster,
        &["pv"],
        NONE,
        STATUS,
        true
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Namespaced,
        &["pvc"],
        NONE,
        STATUS,
        true
    ),
    res!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        Namespaced,
        &["limits"],
        NONE,
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        Namespaced,
        &["quota"],
        NONE,
        STATUS,
        true
    ),
    res!(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        Namespaced,
        &["rc"],
        ALL,
        STATUS_SCALE,
        true
    ),
    res!(
        "",
        "v1",
        "PodTemplate",
        "podtemplates",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    // apps/v1
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        Namespaced,
        &["deploy"],
        ALL,
        STATUS_SCALE,
        true
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        Namespaced,
        &["rs"],
        ALL,
        STATUS_SCALE,
        true
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        Namespaced,
        &["sts"],
        ALL,
        STATUS_SCALE,
        true
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        Namespaced,
        &["ds"],
        ALL,
        STATUS,
        true
    ),
    res!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    // batch/v1
    res!("batch", "v1", "Job", "jobs", Namespaced, NONE, ALL, STATUS, true),
    res!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        Namespaced,
        &["cj"],
        ALL,
        STATUS,
        true
    ),
    // networking.k8s.io/v1
    res!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        Namespaced,
        &["ing"],
        NONE,
        STATUS,
        true
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        Cluster,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        Namespaced,
        &["netpol"],
        NONE,
        &[],
        false
    ),
    // discovery.k8s.io/v1
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    // coordination.k8s.io/v1
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    // rbac.authorization.k8s.io/v1
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        Namespaced,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        Cluster,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        Cluster,
        NONE,
        NONE,
        &[],
        false
    ),
    // policy/v1
    res!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        Namespaced,
        &["pdb"],
        NONE,
        STATUS,
        true
    ),
    // storage.k8s.io/v1
    res!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        Cluster,
        &["sc"],
        NONE,
        &[],
        false
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "CSINode",
        "csinodes",
        Cluster,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        Cluster,
        NONE,
        NONE,
        &[],
        false
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        "volumeattachments",
        Cluster,
        NONE,
        NONE,
        STATUS,
        true
    ),
    // scheduling.k8s.io/v1
    res!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        Cluster,
        &["pc"],
        NONE,
        &[],
        false
    ),
    // events.k8s.io/v1: kept apart from core/v1 events (different field names).
    res!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        Namespaced,
        &["ev"],
        NONE,
        &[],
        false
    ),
    // autoscaling: v2 is the stored form; v1 reads the same objects.
    res!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        Namespaced,
        &["hpa"],
        ALL,
        STATUS,
        true
    ),
    res!(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        Namespaced,
        &["hpa"],
        ALL,
        STATUS,
        true
    ),
    // certificates.k8s.io/v1
    res!(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        Cluster,
        &["csr"],
        NONE,
        &[Sub::Status, Sub::Action("approval")],
        true
    ),
    // apiextensions.k8s.io/v1 (stored; served as CRDs by a later stage)
    res!(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        Cluster,
        &["crd", "crds"],
        &["api-extensions"],
        STATUS,
        true
    ),
    // admissionregistration.k8s.io/v1 (stored)
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        Cluster,
        NONE,
        &["api-extensions"],
        &[],
        false
    ),
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        Cluster,
        NONE,
        &["api-extensions"],
        &[],
        false
    ),
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        Cluster,
        NONE,
        &["api-extensions"],
        STATUS,
        true
    ),
    res!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        Cluster,
        NONE,
        &["api-extensions"],
        &[],
        false
    ),
];

static BUILTIN: LazyLock<Vec<Arc<ResourceInfo>>> =
    LazyLock::new(|| RESOURCES.iter().cloned().map(Arc::new).collect());

/// The kinds CustomResourceDefinitions define, in discovery order.
static CUSTOM: RwLock<Vec<Arc<ResourceInfo>>> = RwLock::new(Vec::new());

fn custom() -> Vec<Arc<ResourceInfo>> {
    // A writer cannot panic while holding the lock (it only swaps a Vec).
    CUSTOM.read().map(|c| c.clone()).unwrap_or_default()
}

/// Replace the custom kinds (the CRD watcher calls this on every change).
pub fn set_custom(resources: Vec<ResourceInfo>) {
    let list = resources.into_iter().map(Arc::new).collect();
    if let Ok(mut c) = CUSTOM.write() {
        *c = list;
    }
}

/// Every served resource: built-in kinds first, then custom ones.
pub fn all() -> Vec<Arc<ResourceInfo>> {
    let mut out = BUILTIN.clone();
    out.extend(custom());
    out
}

/// Visit every served resource without cloning the lists (the request path
/// asks on every call).
fn each(mut f: impl FnMut(&ResourceInfo)) {
    BUILTIN.iter().for_each(|r| f(r));
    if let Ok(c) = CUSTOM.read() {
        c.iter().for_each(|r| f(r));
    }
}

fn find(pred: impl Fn(&ResourceInfo) -> bool) -> Option<Arc<ResourceInfo>> {
    if let Some(r) = BUILTIN.iter().find(|r| pred(r)) {
        return Some(r.clone());
    }
    CUSTOM.read().ok()?.iter().find(|r| pred(r)).cloned()
}

/// Find a served resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
    find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Find a served resource by group, version and kind.
pub fn lookup_kind(group: &str, version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
    find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Whether a built-in kind is served in this group.
pub fn is_builtin_group(group: &str) -> bool {
    RESOURCES.iter().any(|r| r.group == group)
}

/// The versions served for a group, preferred first. Custom groups order
/// them by Kubernetes version priority (v2 > v1 > v1beta2 > v1beta1 > v1alpha1).
pub fn group_versions(group: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    each(|r| {
        if r.group == group && !out.contains(&r.version) {
            out.push(r.version);
        }
    });
    if !is_builtin_group(group) {
        out.sort_by(|a, b| crate::api::crd::version_priority(a, b));
    }
    out
}

/// The named groups in discovery order (the core group is served at /api).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    each(|r| {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    });
    out
}

/// A `&'static str` equal to `s`, leaked at most once per distinct value.
pub fn intern(s: &str) -> &'static str {
    static POOL: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut pool = match POOL.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    pool.insert(leaked);
    leaked
}

/// A `&'static` list of interned strings, leaked at most once per distinct list.
pub fn intern_list(items: &[String]) -> &'static [&'static str] {
    type Pool = HashSet<&'static [&'static str]>;
    static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(Default::default);
    let list: Vec<&'static str> = items.iter().map(|s| intern(s)).collect();
    let mut pool = match POOL.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(found) = pool.get(list.as_slice()) {
        return found;
    }
    let leaked: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    pool.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} served twice",
                    a.plural
                );
            }
        }
    }

    #[test]
    fn keys_separate_namespaces_and_share_versions() {
        let pods = lookup("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.key(Some("default"), "a"),
            "/registry/core/pods/default/a"
        );
        assert_eq!(
            pods.list_prefix(Some("default")),
            "/registry/core/pods/default/"
        );
        let v1 = lookup("autoscaling", "v1", "horizontalpodautoscalers").expect("v1");
        let v2 = lookup("autoscaling", "v2", "horizontalpodautoscalers").expect("v2");
        assert_eq!(v1.storage_prefix(), v2.storage_prefix());
        let ns = lookup("", "v1", "namespaces").expect("ns");
        assert_eq!(
            ns.key(Some("x"), "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
    }

    #[test]
    fn preferred_version_comes_first() {
        assert_eq!(group_versions("autoscaling"), vec!["v2", "v1"]);
        assert!(groups().contains(&"apps"));
    }
}
