//! Pod spec validation, shared by Pods and every pod template (Deployment,
//! Job, ...). Templates differ in one rule: a container image may be left
//! for a later step to fill in, as upstream allows.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::field_error::FieldError;
use super::json::{arr_at, has, s};
use super::metadata::{validate_annotations, validate_labels};
use super::resources::validate_resource_requirements;
use super::syntax::{
    inclusive_range_error, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_env_var_name, is_qualified_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num,
};

const MAX_INT32: i64 = i32::MAX as i64;

/// Every volume source field of a v1 Volume.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

pub fn volume_sources() -> &'static [&'static str] {
    VOLUME_SOURCES
}

/// A pod's own `spec`.
pub fn validate_pod(obj: &Value) -> Vec<FieldError> {
    validate_pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", false)
}

/// A pod template at `path` (like `spec.template`): its labels,
/// annotations and pod spec.
pub fn validate_pod_template(template: Option<&Value>, path: &str) -> Vec<FieldError> {
    let Some(t) = template.filter(|t| !t.is_null()) else {
        return vec![FieldError::required(path, "")];
    };
    let meta = t.get("metadata").unwrap_or(&Value::Null);
    // Upstream names these `<template>.labels`, without `metadata`.
    let mut errs = validate_labels(meta.get("labels"), &format!("{path}.labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &format!("{path}.annotations"),
    ));
    errs.extend(validate_pod_spec(
        t.get("spec").unwrap_or(&Value::Null),
        &format!("{path}.spec"),
        true,
    ));
    errs
}

pub fn validate_pod_spec(spec: &Value, path: &str, is_template: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(spec, path, &mut errs);

    let containers = arr_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let restart_policy = s(spec, "restartPolicy");
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut names: HashSet<String> = HashSet::new();
    let mut ctx = ContainerCtx {
        volumes: &volumes,
        names: &mut names,
        is_template,
        host_network,
        errs: &mut errs,
    };
    for (i, c) in containers.iter().enumerate() {
        ctx.container(c, &format!("{path}.containers[{i}]"), Kind::App);
    }
    for (i, c) in arr_at(spec, "initContainers").iter().enumerate() {
        ctx.container(c, &format!("{path}.initContainers[{i}]"), Kind::Init);
    }
    for (i, c) in arr_at(spec, "ephemeralContainers").iter().enumerate() {
        ctx.container(
            c,
            &format!("{path}.ephemeralContainers[{i}]"),
            Kind::Ephemeral,
        );
    }

    match restart_policy {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &json!(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    match s(spec, "dnsPolicy") {
        "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" => {}
        "None" => {
            if !has(spec, "dnsConfig") {
                errs.push(FieldError::required(
                    format!("{path}.dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
            }
        }
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            &json!(other),
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    for (key, check) in [
        (
            "serviceAccountName",
            is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ] {
        let v = s(spec, key);
        if !v.is_empty() {
            for m in check(v) {
                errs.push(FieldError::invalid_str(format!("{path}.{key}"), v, &m));
            }
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=MAX_INT32).contains(&ads) {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                &json!(ads),
                &inclusive_range_error(1, MAX_INT32),
            ));
        }
    }
    errs.extend(validate_tolerations(
        spec.get("tolerations"),
        &format!("{path}.tolerations"),
    ));
    errs
}

/// Volume names (as declared) after checking each volume.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, vol) in arr_at(spec, "volumes").iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        validate_volume_source(vol, &p, errs);
        let name = s(vol, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid_str(format!("{p}.name"), name, &m));
            }
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), &json!(name)));
        }
    }
    names
}

fn validate_volume_source(vol: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let present: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|k| has(vol, k))
        .collect();
    match present.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a volume type")),
        [_, extra @ ..] => {
            for k in extra {
                errs.push(FieldError::forbidden(
                    format!("{path}.{k}"),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    let required = |src: &str, key: &str, errs: &mut Vec<FieldError>| {
        if let Some(v) = vol.get(src).filter(|v| !v.is_null()) {
            if s(v, key).is_empty() {
                errs.push(FieldError::required(format!("{path}.{src}.{key}"), ""));
            }
        }
    };
    required("configMap", "name", errs);
    required("secret", "secretName", errs);
    required("persistentVolumeClaim", "claimName", errs);
    required("hostPath", "path", errs);
    required("nfs", "server", errs);
    required("nfs", "path", errs);
    for src in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(mode) = vol
            .get(src)
            .and_then(|v| v.get("defaultMode"))
            .and_then(Value::as_i64)
        {
            if !(0..=0o777).contains(&mode) {
                errs.push(FieldError::invalid(
                    format!("{path}.{src}.defaultMode"),
                    &json!(mode),
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    for src in ["configMap", "secret"] {
        for (i, item) in vol
            .get(src)
            .map(|v| arr_at(v, "items"))
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let key = s(item, "key");
            let p = format!("{path}.{src}.items[{i}]");
            if key.is_empty() {
                errs.push(FieldError::required(format!("{p}.key"), ""));
            } else {
                for m in is_config_map_key(key) {
                    errs.push(FieldError::invalid_str(format!("{p}.key"), key, &m));
                }
            }
            if s(item, "path").is_empty() {
                errs.push(FieldError::required(format!("{p}.path"), ""));
            }
        }
    }
    if let Some(t) = vol
        .get("hostPath")
        .and_then(|h| h.get("type"))
        .and_then(Value::as_str)
    {
        const TYPES: &[&str] = &[
            "",
            "BlockDevice",
            "CharDevice",
            "Directory",
            "DirectoryOrCreate",
            "File",
            "FileOrCreate",
            "Socket",
        ];
        if !TYPES.contains(&t) {
            errs.push(FieldError::not_supported(
                format!("{path}.hostPath.type"),
                &json!(t),
                TYPES,
            ));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    Init,
    Ephemeral,
}

struct ContainerCtx<'a> {
    volumes: &'a HashSet<String>,
    names: &'a mut HashSet<String>,
    is_template: bool,
    host_network: bool,
    errs: &'a mut Vec<FieldError>,
}

impl ContainerCtx<'_> {
    fn container(&mut self, c: &Value, path: &str, kind: Kind) {
        let name = s(c, "name");
        if name.is_empty() {
            self.errs
                .push(FieldError::required(format!("{path}.name"), ""));
        } else {
            for m in is_dns1123_label(name) {
                self.errs
                    .push(FieldError::invalid_str(format!("{path}.name"), name, &m));
            }
            if !self.names.insert(name.to_string()) {
                self.errs
                    .push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            }
        }
        let image = s(c, "image");
        if image.is_empty() {
            if !self.is_template {
                self.errs
                    .push(FieldError::required(format!("{path}.image"), ""));
            }
        } else if image.trim() != image {
            self.errs.push(FieldError::invalid_str(
                format!("{path}.image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
        self.enum_field(
            c,
            path,
            "imagePullPolicy",
            &["Always", "IfNotPresent", "Never"],
        );
        self.enum_field(
            c,
            path,
            "terminationMessagePolicy",
            &["File", "FallbackToLogsOnError"],
        );
        self.ports(c, path);
        self.env(c, path);
        self.volume_mounts(c, path);
        self.errs.extend(validate_resource_requirements(
            c.get("resources"),
            &format!("{path}.resources"),
        ));

        let sidecar = s(c, "restartPolicy") == "Always";
        match kind {
            Kind::App | Kind::Ephemeral => {
                if has(c, "restartPolicy") {
                    self.errs.push(FieldError::forbidden(
                        format!("{path}.restartPolicy"),
                        "may not be set for non-init containers",
                    ));
                }
            }
            Kind::Init => {
                if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
                    if rp != "Always" {
                        self.errs.push(FieldError::not_supported(
                            format!("{path}.restartPolicy"),
                            &json!(rp),
                            &["Always"],
                        ));
                    }
                }
            }
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let Some(p) = c.get(probe).filter(|p| !p.is_null()) else {
                continue;
            };
            let ppath = format!("{path}.{probe}");
            if kind != Kind::App && !(kind == Kind::Init && sidecar) {
                let why = if kind == Kind::Init {
                    "may not be set for init containers without restartPolicy=Always"
                } else {
                    "cannot be set for an Ephemeral Container"
                };
                self.errs.push(FieldError::forbidden(ppath, why));
                continue;
            }
            if kind == Kind::Init && probe == "readinessProbe" {
                self.errs.push(FieldError::forbidden(
                    ppath,
                    "may not be set for init containers",
                ));
                continue;
            }
            self.probe(p, &ppath, probe != "readinessProbe");
        }
        if let Some(lc) = c.get("lifecycle").filter(|v| !v.is_null()) {
            if kind == Kind::Init && !sidecar {
                self.errs.push(FieldError::forbidden(
                    format!("{path}.lifecycle"),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            } else {
                for hook in ["postStart", "preStop"] {
                    if let Some(h) = lc.get(hook).filter(|v| !v.is_null()) {
                        self.handler(h, &format!("{path}.lifecycle.{hook}"), true);
                    }
                }
            }
        }
    }

    fn enum_field(&mut self, c: &Value, path: &str, key: &str, allowed: &[&str]) {
        if let Some(v) = c.get(key).and_then(Value::as_str) {
            if !allowed.contains(&v) {
                self.errs.push(FieldError::not_supported(
                    format!("{path}.{key}"),
                    &json!(v),
                    allowed,
                ));
            }
        }
    }

    fn ports(&mut self, c: &Value, path: &str) {
        let mut names = HashSet::new();
        for (i, p) in arr_at(c, "ports").iter().enumerate() {
            let pp = format!("{path}.ports[{i}]");
            let name = s(p, "name");
            if !name.is_empty() {
                let msgs = is_valid_port_name(name);
                if !msgs.is_empty() {
                    for m in msgs {
                        self.errs
                            .push(FieldError::invalid_str(format!("{pp}.name"), name, &m));
                    }
                } else if !names.insert(name.to_string()) {
                    self.errs
                        .push(FieldError::duplicate(format!("{pp}.name"), &json!(name)));
                }
            }
            let cp = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            if cp == 0 {
                self.errs
                    .push(FieldError::required(format!("{pp}.containerPort"), ""));
            } else {
                for m in is_valid_port_num(cp) {
                    self.errs.push(FieldError::invalid(
                        format!("{pp}.containerPort"),
                        &json!(cp),
                        &m,
                    ));
                }
            }
            let hp = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if hp != 0 {
                for m in is_valid_port_num(hp) {
                    self.errs.push(FieldError::invalid(
                        format!("{pp}.hostPort"),
                        &json!(hp),
                        &m,
                    ));
                }
                if self.host_network && hp != cp {
                    self.errs.push(FieldError::invalid(
                        format!("{pp}.hostPort"),
                        &json!(hp),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
            match s(p, "protocol") {
                "TCP" | "UDP" | "SCTP" => {}
                "" => self
                    .errs
                    .push(FieldError::required(format!("{pp}.protocol"), "")),
                other => self.errs.push(FieldError::not_supported(
                    format!("{pp}.protocol"),
                    &json!(other),
                    &["SCTP", "TCP", "UDP"],
                )),
            }
        }
    }

    fn env(&mut self, c: &Value, path: &str) {
        for (i, e) in arr_at(c, "env").iter().enumerate() {
            let ep = format!("{path}.env[{i}]");
            let name = s(e, "name");
            if name.is_empty() {
                self.errs
                    .push(FieldError::required(format!("{ep}.name"), ""));
            } else {
                for m in is_env_var_name(name) {
                    self.errs
                        .push(FieldError::invalid_str(format!("{ep}.name"), name, &m));
                }
            }
            let Some(from) = e.get("valueFrom").filter(|v| !v.is_null()) else {
                continue;
            };
            let fp = format!("{ep}.valueFrom");
            let n = [
                "fieldRef",
                "resourceFieldRef",
                "configMapKeyRef",
                "secretKeyRef",
            ]
            .iter()
            .filter(|k| has(from, k))
            .count();
            if n == 0 {
                self.errs.push(FieldError::invalid_str(
                    &fp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if n > 1 {
                self.errs.push(FieldError::invalid_str(
                    &fp,
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
            if n != 0 && !s(e, "value").is_empty() {
                self.errs.push(FieldError::invalid_str(
                    &fp,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            for r in ["configMapKeyRef", "secretKeyRef"] {
                if let Some(kr) = from.get(r).filter(|v| !v.is_null()) {
                    if s(kr, "key").is_empty() {
                        self.errs
                            .push(FieldError::required(format!("{fp}.{r}.key"), ""));
                    }
                }
            }
            if let Some(fr) = from.get("fieldRef").filter(|v| !v.is_null()) {
                if s(fr, "fieldPath").is_empty() {
                    self.errs
                        .push(FieldError::required(format!("{fp}.fieldRef.fieldPath"), ""));
                }
            }
        }
    }

    fn volume_mounts(&mut self, c: &Value, path: &str) {
        let mut mount_paths = HashSet::new();
        for (i, m) in arr_at(c, "volumeMounts").iter().enumerate() {
            let mp = format!("{path}.volumeMounts[{i}]");
            let name = s(m, "name");
            if name.is_empty() {
                self.errs
                    .push(FieldError::required(format!("{mp}.name"), ""));
            }
            if !self.volumes.contains(name) {
                self.errs
                    .push(FieldError::not_found(format!("{mp}.name"), &json!(name)));
            }
            let mount_path = s(m, "mountPath");
            if mount_path.is_empty() {
                self.errs
                    .push(FieldError::required(format!("{mp}.mountPath"), ""));
            }
            if !mount_paths.insert(mount_path.to_string()) {
                self.errs.push(FieldError::invalid_str(
                    format!("{mp}.mountPath"),
                    mount_path,
                    "must be unique",
                ));
            }
        }
    }

    fn probe(&mut self, p: &Value, path: &str, single_success: bool) {
        self.handler(p, path, false);
        for key in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            if let Some(v) = p.get(key).and_then(Value::as_i64) {
                if v < 0 {
                    self.errs.push(FieldError::invalid(
                        format!("{path}.{key}"),
                        &json!(v),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        if single_success {
            if let Some(v) = p.get("successThreshold").and_then(Value::as_i64) {
                if v != 1 {
                    self.errs.push(FieldError::invalid(
                        format!("{path}.successThreshold"),
                        &json!(v),
                        "must be 1",
                    ));
                }
            }
        }
        if let Some(v) = p
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
        {
            if v <= 0 {
                self.errs.push(FieldError::invalid(
                    format!("{path}.terminationGracePeriodSeconds"),
                    &json!(v),
                    "must be greater than 0",
                ));
            }
        }
    }

    /// Probe handlers and lifecycle hooks: exactly one action, with valid
    /// ports.
    fn handler(&mut self, h: &Value, path: &str, lifecycle: bool) {
        let kinds: &[&str] = if lifecycle {
            &["exec", "httpGet", "tcpSocket", "sleep"]
        } else {
            &["exec", "httpGet", "tcpSocket", "grpc"]
        };
        let present: Vec<&str> = kinds.iter().copied().filter(|k| has(h, k)).collect();
        match present.as_slice() {
            [] => self
                .errs
                .push(FieldError::required(path, "must specify a handler type")),
            [_, extra @ ..] => {
                for k in extra {
                    self.errs.push(FieldError::forbidden(
                        format!("{path}.{k}"),
                        "may not specify more than 1 handler type",
                    ));
                }
            }
        }
        for k in ["httpGet", "tcpSocket"] {
            if let Some(a) = h.get(k).filter(|v| !v.is_null()) {
                self.port_num_or_name(a.get("port"), &format!("{path}.{k}.port"));
            }
        }
        if let Some(g) = h.get("httpGet").filter(|v| !v.is_null()) {
            if let Some(scheme) = g.get("scheme").and_then(Value::as_str) {
                if scheme != "HTTP" && scheme != "HTTPS" {
                    self.errs.push(FieldError::not_supported(
                        format!("{path}.httpGet.scheme"),
                        &json!(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
        }
        if let Some(port) = h
            .get("grpc")
            .and_then(|g| g.get("port"))
            .and_then(Value::as_i64)
        {
            for m in is_valid_port_num(port) {
                self.errs.push(FieldError::invalid(
                    format!("{path}.grpc.port"),
                    &json!(port),
                    &m,
                ));
            }
        }
    }

    fn port_num_or_name(&mut self, port: Option<&Value>, path: &str) {
        self.errs.extend(validate_port_num_or_name(port, path));
    }
}

/// An IntOrString port: a number in range or an IANA port name.
pub fn validate_port_num_or_name(port: Option<&Value>, path: &str) -> Vec<FieldError> {
    match port {
        Some(Value::Number(n)) => {
            let v = n.as_i64().unwrap_or(0);
            is_valid_port_num(v)
                .iter()
                .map(|m| FieldError::invalid(path, &json!(v), m))
                .collect()
        }
        Some(Value::String(name)) => is_valid_port_name(name)
            .iter()
            .map(|m| FieldError::invalid_str(path, name, m))
            .collect(),
        _ => is_valid_port_num(0)
            .iter()
            .map(|m| FieldError::invalid(path, &json!(0), m))
            .collect(),
    }
}

pub fn validate_tolerations(tolerations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("{path}[{i}]");
        let key = s(t, "key");
        let op = s(t, "operator");
        let value = s(t, "value");
        let effect = s(t, "effect");
        if !key.is_empty() {
            for m in is_qualified_name(key) {
                errs.push(FieldError::invalid_str(format!("{p}.key"), key, &m));
            }
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid_str(
                format!("{p}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if has(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid_str(
                format!("{p}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid_str(
                        format!("{p}.operator"),
                        value,
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        t,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                &json!(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(FieldError::not_supported(
                format!("{p}.effect"),
                &json!(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    /// A spec as defaulting leaves it.
    fn base() -> Value {
        json!({
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "app", "image": "nginx", "terminationMessagePolicy": "File",
                            "imagePullPolicy": "Always"}]
        })
    }

    fn errs(spec: Value) -> Vec<String> {
        validate_pod(&pod(spec))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut s = base();
        f(&mut s);
        s
    }

    #[test]
    fn valid_pod() {
        assert_eq!(errs(base()), Vec::<String>::new());
    }

    #[test]
    fn containers_required() {
        let e = validate_pod(&pod(
            json!({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "containers": []}),
        ));
        assert_eq!(e[0].to_string(), "spec.containers: Required value");
        assert_eq!(e[0].reason, "FieldValueRequired");
    }

    #[test]
    fn container_names_and_images() {
        let e = errs(with(|s| {
            s["containers"] = json!([{"name": "a", "image": "x"}, {"name": "a"}, {"image": "y"}, {"name": "Bad_Name", "image": "z"}]);
            s["initContainers"] = json!([{"name": "a", "image": "x"}]);
        }));
        assert!(
            e.contains(&"spec.containers[1].name: Duplicate value: \"a\"".to_string()),
            "{e:?}"
        );
        assert!(e.contains(&"spec.containers[1].image: Required value".to_string()));
        assert!(e.contains(&"spec.containers[2].name: Required value".to_string()));
        assert!(e.iter().any(|m| m.starts_with(
            "spec.containers[3].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"
        )));
        assert!(e.contains(&"spec.initContainers[0].name: Duplicate value: \"a\"".to_string()));
        // Templates may leave the image empty.
        let t = validate_pod_spec(
            &with(|s| s["containers"][0]["image"] = json!("")),
            "spec.template.spec",
            true,
        );
        assert!(t.is_empty(), "{t:?}");
    }

    #[test]
    fn ports() {
        let e = errs(with(|s| {
            s["containers"][0]["ports"] = json!([
                {"name": "http", "containerPort": 80, "protocol": "TCP"},
                {"name": "http", "containerPort": 70000, "protocol": "TCP"},
                {"containerPort": 0, "protocol": "ICMP"}
            ]);
        }));
        assert_eq!(
            e,
            vec![
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].containerPort: Required value",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
    }

    #[test]
    fn policies() {
        let e = errs(with(|s| {
            s["restartPolicy"] = json!("Sometimes");
            s["dnsPolicy"] = json!("Nope");
        }));
        assert_eq!(
            e,
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Nope\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
            ]
        );
    }

    #[test]
    fn volumes_and_mounts() {
        let e = errs(with(|s| {
            s["volumes"] = json!([
                {"name": "data", "emptyDir": {}},
                {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "none"}
            ]);
            s["containers"][0]["volumeMounts"] = json!([
                {"name": "data", "mountPath": "/d"},
                {"name": "missing", "mountPath": "/d"}
            ]);
        }));
        assert_eq!(
            e,
            vec![
                "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2]: Required value: must specify a volume type",
                "spec.containers[0].volumeMounts[1].name: Not found: \"missing\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
            ]
        );
    }

    #[test]
    fn resources_checked() {
        let e = errs(with(|s| {
            s["containers"][0]["resources"] =
                json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}});
        }));
        assert_eq!(
            e,
            vec!["spec.containers[0].resources.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi"]
        );
    }

    #[test]
    fn probes_env_tolerations() {
        let e = errs(with(|s| {
            s["containers"][0]["livenessProbe"] =
                json!({"successThreshold": 2, "httpGet": {"port": 0}});
            s["containers"][0]["readinessProbe"] = json!({});
            s["containers"][0]["env"] = json!([{"name": ""}, {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
            s["tolerations"] = json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}]);
        }));
        assert!(e.contains(&"spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive".to_string()), "{e:?}");
        assert!(e.contains(
            &"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
                .to_string()
        ));
        assert!(e.contains(
            &"spec.containers[0].readinessProbe: Required value: must specify a handler type"
                .to_string()
        ));
        assert!(e.contains(&"spec.containers[0].env[0].name: Required value".to_string()));
        assert!(e.contains(&"spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty".to_string()));
        assert!(e.iter().any(|m| m.starts_with("spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty")));
        assert!(e.iter().any(
            |m| m.starts_with("spec.tolerations[1].operator: Invalid value: ")
                && m.ends_with("value must be empty when `operator` is 'Exists'")
        ));
    }
}
