//! Defaults for pod specs, as upstream's v1 defaulters set them. A Pod
//! gets a few more than a pod template: those come from Pod-only
//! defaulters and the ServiceAccount admission plugin upstream (Priority
//! is an admission plugin here too: `priority.rs`),
//! so a Deployment's template does not show them.

use serde_json::{json, Value};

use crate::api::quantity::parse_quantity_value;

use super::json::{default, each_obj_mut, ensure_obj, obj_mut, Obj};
use super::pod::volume_sources;
use super::qos::pod_qos_class;

/// A Pod object: spec defaults, Pod-only defaults, and a fresh status.
pub fn default_pod(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(spec) = ensure_obj(o, "spec") {
        default_pod_spec(spec);
        default_pod_only(spec);
    }
    let needs_status = o.get("status").is_none_or(|s| {
        s.get("phase")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    });
    if needs_status {
        let qos = pod_qos_class(obj);
        if let Some(status) = obj.as_object_mut().and_then(|o| ensure_obj(o, "status")) {
            status.insert("phase".into(), json!("Pending"));
            default(status, "qosClass", json!(qos));
        }
    }
}

/// A pod template (`spec.template` of a workload): metadata as upstream
/// serializes an empty template ObjectMeta, and spec defaults.
pub fn default_pod_template(template: &mut Obj) {
    if let Some(meta) = ensure_obj(template, "metadata") {
        default_template_meta(meta);
    }
    if let Some(spec) = ensure_obj(template, "spec") {
        default_pod_spec(spec);
    }
}

/// Embedded ObjectMeta serializes its zero creationTimestamp as null.
pub fn default_template_meta(meta: &mut Obj) {
    if !meta.contains_key("creationTimestamp") {
        meta.insert("creationTimestamp".into(), Value::Null);
    }
}

/// `SetDefaults_PodSpec` and everything nested in it.
pub fn default_pod_spec(spec: &mut Obj) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    // The deprecated `serviceAccount` mirrors serviceAccountName (v1
    // conversion fills each from the other).
    let sa_name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let sa_old = spec
        .get("serviceAccount")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if sa_name.is_empty() && !sa_old.is_empty() {
        spec.insert("serviceAccountName".into(), json!(sa_old));
    } else if !sa_name.is_empty() {
        spec.insert("serviceAccount".into(), json!(sa_name));
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        each_obj_mut(spec, list, default_container);
    }
    each_obj_mut(spec, "volumes", default_volume);
    if let Some(overhead) = obj_mut(spec, "overhead") {
        canonical_quantities(overhead);
    }
}

/// Defaults a Pod gets that a template does not.
fn default_pod_only(spec: &mut Obj) {
    default(spec, "enableServiceLinks", json!(true));
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if sa.is_empty() {
        spec.insert("serviceAccountName".into(), json!("default"));
        spec.insert("serviceAccount".into(), json!("default"));
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        each_obj_mut(spec, list, |c| {
            if host_network {
                each_obj_mut(c, "ports", |p| {
                    let unset = p
                        .get("hostPort")
                        .and_then(Value::as_i64)
                        .is_none_or(|h| h == 0);
                    if unset {
                        if let Some(cp) = p.get("containerPort").cloned() {
                            p.insert("hostPort".into(), cp);
                        }
                    }
                });
            }
            requests_from_limits(c);
        });
    }
}

/// A limit without a request means the request equals the limit.
fn requests_from_limits(c: &mut Obj) {
    let Some(res) = obj_mut(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = ensure_obj(res, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// The tag of an image reference, if any (`nginx:1.25` → `1.25`,
/// `localhost:5000/app` → none, `app@sha256:..` → none).
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Always for `:latest` or untagged images (they may move), else
/// IfNotPresent.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    match image_tag(image) {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if image.contains('@') => "IfNotPresent",
        None => "Always",
    }
}

fn default_container(c: &mut Obj) {
    if c.get("imagePullPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        c.insert("imagePullPolicy".into(), json!(default_pull_policy(image)));
    }
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    each_obj_mut(c, "ports", |p| default(p, "protocol", json!("TCP")));
    if let Some(res) = ensure_obj(c, "resources") {
        for list in ["limits", "requests"] {
            if let Some(l) = obj_mut(res, list) {
                canonical_quantities(l);
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_mut(c, probe) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            // Upstream defaults the service to "" (kubectl describe relies on it).
            if let Some(g) = obj_mut(p, "grpc") {
                default(g, "service", json!(""));
            }
            default_handler(p);
        }
    }
    if let Some(lc) = obj_mut(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = obj_mut(lc, hook) {
                default_handler(h);
            }
        }
    }
    each_obj_mut(c, "env", |e| {
        if let Some(from) = obj_mut(e, "valueFrom") {
            default_field_refs(from);
        }
    });
}

fn default_handler(h: &mut Obj) {
    if let Some(g) = obj_mut(h, "httpGet") {
        default(g, "path", json!("/"));
        default(g, "scheme", json!("HTTP"));
    }
}

/// fieldRef apiVersion and resourceFieldRef divisor, wherever they appear
/// (env, downward API volumes).
fn default_field_refs(holder: &mut Obj) {
    if let Some(f) = obj_mut(holder, "fieldRef") {
        default(f, "apiVersion", json!("v1"));
    }
    if let Some(r) = obj_mut(holder, "resourceFieldRef") {
        default(r, "divisor", json!("0"));
        if let Some(d) = r.get("divisor").and_then(|d| parse_quantity_value(d).ok()) {
            r.insert("divisor".into(), json!(d.canonical()));
        }
    }
}

fn default_volume(v: &mut Obj) {
    let sources = volume_sources();
    if !sources
        .iter()
        .any(|k| v.get(*k).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = obj_mut(v, src) {
            default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = obj_mut(v, "downwardAPI") {
        each_obj_mut(d, "items", default_field_refs);
    }
    if let Some(p) = obj_mut(v, "projected") {
        each_obj_mut(p, "sources", |src| {
            if let Some(t) = obj_mut(src, "serviceAccountToken") {
                default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = obj_mut(src, "downwardAPI") {
                each_obj_mut(d, "items", default_field_refs);
            }
        });
    }
    if let Some(h) = obj_mut(v, "hostPath") {
        default(h, "type", json!(""));
    }
    if let Some(e) = obj_mut(v, "emptyDir") {
        if let Some(q) = e
            .get("sizeLimit")
            .and_then(|q| parse_quantity_value(q).ok())
        {
            e.insert("sizeLimit".into(), json!(q.canonical()));
        }
    }
    if let Some(i) = obj_mut(v, "iscsi") {
        default(i, "iscsiInterface", json!("default"));
    }
    if let Some(r) = obj_mut(v, "rbd") {
        default(r, "pool", json!("rbd"));
        default(r, "user", json!("admin"));
        default(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(img) = obj_mut(v, "image") {
        if img
            .get("pullPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let reference = img.get("reference").and_then(Value::as_str).unwrap_or("");
            img.insert("pullPolicy".into(), json!(default_pull_policy(reference)));
        }
    }
    if let Some(spec) = v
        .get_mut("ephemeral")
        .and_then(|e| e.get_mut("volumeClaimTemplate"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default(spec, "volumeMode", json!("Filesystem"));
    }
}

/// Rewrite parseable quantities in their canonical spelling (`1000m` →
/// `1`), as upstream's serializer does. Unparseable ones are left for
/// validation to report.
pub fn canonical_quantities(list: &mut Obj) {
    for v in list.values_mut() {
        if let Ok(q) = parse_quantity_value(v) {
            *v = json!(q.canonical());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/app:v1"), "IfNotPresent");
        assert_eq!(default_pull_policy("app@sha256:abcd"), "IfNotPresent");
        assert_eq!(default_pull_policy("app:latest@sha256:abcd"), "Always");
    }

    #[test]
    fn bare_pod_gets_upstream_defaults() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}
        });
        default_pod(&mut pod);
        assert_eq!(
            pod["spec"],
            json!({
                "containers": [{
                    "name": "c", "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "resources": {}
                }],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "schedulerName": "default-scheduler",
                "enableServiceLinks": true,
                "serviceAccountName": "default",
                "serviceAccount": "default"
            })
        );
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn limits_become_requests_and_quantities_are_canonical() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"cpu": "1000m", "memory": "1Gi"}}}]}});
        default_pod(&mut pod);
        let res = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(res["limits"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(res["requests"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(pod["status"]["qosClass"], "Guaranteed");
    }

    #[test]
    fn probes_env_and_volumes() {
        let mut spec = json!({
            "containers": [{"name": "c", "image": "i:1",
                "livenessProbe": {"httpGet": {"port": 8080}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [
                {"name": "a"},
                {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "hostPath": {"path": "/x"}},
                {"name": "d", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
            ]
        });
        default_pod_spec(spec.as_object_mut().unwrap());
        let c = &spec["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["hostPath"]["type"], "");
        assert_eq!(spec["volumes"][3]["projected"]["defaultMode"], 420);
        assert_eq!(
            spec["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"],
            3600
        );
        // Templates get no Pod-only fields.
        assert!(spec.get("enableServiceLinks").is_none());
        assert!(spec.get("serviceAccountName").is_none());
    }

    #[test]
    fn host_network_ports_and_service_account_alias() {
        let mut pod = json!({"spec": {"hostNetwork": true, "serviceAccount": "builder",
            "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 53}]}]}});
        default_pod(&mut pod);
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 53);
        assert_eq!(pod["spec"]["serviceAccountName"], "builder");
    }
}
