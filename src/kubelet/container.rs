//! Turns a pod's container into the runtime's container description:
//! environment (values, field/resource/configMap/secret references, envFrom,
//! service links, `$(VAR)` expansion), mounts, resources and security.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, ResourceFieldSelector, Secret, Service,
};
use kube::api::{Api, ListParams};

use super::etcfiles::EtcFiles;
use super::volumes::ConfigError;
use super::KubeletConfig;
use crate::api::quantity::parse_quantity;
use crate::runtime::containers::{ContainerDesc, MountDesc, SeccompDesc};

pub struct Context<'a> {
    pub cfg: &'a KubeletConfig,
    pub client: &'a kube::Client,
    pub pod: &'a Pod,
    pub pod_ip: Option<&'a str>,
    pub volumes: &'a HashMap<String, PathBuf>,
    pub etc: &'a EtcFiles,
    pub qos: &'a str,
}

/// The pod's value for a downward API field path.
pub fn field_value(pod: &Pod, path: &str, pod_ip: Option<&str>) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let render_map = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(&m.labels),
        "metadata.annotations" => render_map(&m.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => {
            status.and_then(|s| s.host_ip.clone()).unwrap_or_default()
        }
        "status.podIP" | "status.podIPs" => pod_ip
            .map(String::from)
            .or_else(|| status.and_then(|s| s.pod_ip.clone()))
            .unwrap_or_default(),
        _ => {
            return map_entry(&m.labels, "metadata.labels['")
                .or_else(|| map_entry(&m.annotations, "metadata.annotations['"))
        }
    })
}

/// limits.cpu / requests.memory … of a container, in the divisor's units
/// (default 1), rounded up like upstream.
pub fn resource_value(pod: &Pod, r: &ResourceFieldSelector) -> anyhow::Result<String> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let c = match &r.container_name {
        Some(n) => containers.iter().find(|c| &c.name == n),
        None => containers.first(),
    }
    .ok_or_else(|| anyhow::anyhow!("resourceFieldRef: no such container"))?;
    let (kind, name) = r
        .resource
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("resourceFieldRef: bad resource {:?}", r.resource))?;
    let res = c.resources.as_ref();
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    let nanos = match map.and_then(|m| m.get(name)) {
        Some(q) => parse_quantity(&q.0)
            .map_err(|e| anyhow::anyhow!(e))?
            .nanos(),
        // An unset limit reports the node's capacity, as upstream.
        None if kind == "limits" && name == "cpu" => {
            std::thread::available_parallelism().map_or(1, |n| n.get()) as i128 * 1_000_000_000
        }
        None => 0,
    };
    let divisor = match &r.divisor {
        Some(d) => parse_quantity(&d.0)
            .map_err(|e| anyhow::anyhow!(e))?
            .nanos(),
        None => 1_000_000_000,
    };
    let divisor = divisor.max(1);
    Ok(((nanos + divisor - 1) / divisor).to_string())
}

/// `$(VAR)` references expanded from `env`; `$$` escapes; unknown ones stay.
pub fn expand(s: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Docker-link style variables for the Services of the pod's namespace.
async fn service_env(
    client: &kube::Client,
    ns: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ConfigError(format!("listing services: {e}")))?;
    let mut out = Vec::new();
    for svc in list.items {
        let Some(spec) = svc.spec else { continue };
        let ip = spec.cluster_ip.unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = svc
            .metadata
            .name
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = &p.name {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", proto.to_lowercase(), first.port),
        ));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let pre = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                pre.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{pre}_PROTO"), proto.to_lowercase()));
            out.push((format!("{pre}_PORT"), p.port.to_string()));
            out.push((format!("{pre}_ADDR"), ip.clone()));
        }
    }
    Ok(out)
}

struct Refs<'a> {
    client: &'a kube::Client,
    ns: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Refs<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps.get(name).and_then(|c| c.as_ref()))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
            let s = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(|c| c.as_ref()))
    }
}

async fn environment(
    cx: &Context<'_>,
    c: &Container,
) -> Result<Vec<(String, String)>, ConfigError> {
    let pod = cx.pod;
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut env: Vec<(String, String)> = Vec::new();
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.enable_service_links).unwrap_or(true) {
        env.extend(service_env(cx.client, &ns).await?);
    }
    let mut refs = Refs {
        client: cx.client,
        ns: ns.clone(),
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    for from in c.env_from.clone().unwrap_or_default() {
        let prefix = from.prefix.unwrap_or_default();
        if let Some(r) = from.config_map_ref {
            match refs.config_map(&r.name).await? {
                Some(cm) => env.extend(
                    cm.data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if r.optional.unwrap_or(false) => {}
                None => return Err(ConfigError(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = from.secret_ref {
            match refs.secret(&r.name).await? {
                Some(s) => env.extend(s.data.clone().unwrap_or_default().into_iter().map(
                    |(k, v)| {
                        (
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        )
                    },
                )),
                None if r.optional.unwrap_or(false) => {}
                None => return Err(ConfigError(format!("secret {:?} not found", r.name))),
            }
        }
    }
    for e in c.env.clone().unwrap_or_default() {
        let known: HashMap<String, String> = env.iter().cloned().collect();
        let value = match (e.value, e.value_from) {
            (Some(v), _) => Some(expand(&v, &known)),
            (None, Some(from)) => {
                if let Some(f) = from.field_ref {
                    Some(field_value(pod, &f.field_path, cx.pod_ip).ok_or_else(|| {
                        ConfigError(format!("unsupported fieldPath {:?}", f.field_path))
                    })?)
                } else if let Some(r) = from.resource_field_ref {
                    Some(resource_value(pod, &r).map_err(|e| ConfigError(e.to_string()))?)
                } else if let Some(k) = from.config_map_key_ref {
                    let optional = k.optional.unwrap_or(false);
                    match refs.config_map(&k.name).await? {
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&k.key)) {
                            Some(v) => Some(v.clone()),
                            None if optional => None,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    k.key, ns, k.name
                                )))
                            }
                        },
                        None if optional => None,
                        None => {
                            return Err(ConfigError(format!("configmap \"{}\" not found", k.name)))
                        }
                    }
                } else if let Some(k) = from.secret_key_ref {
                    let optional = k.optional.unwrap_or(false);
                    match refs.secret(&k.name).await? {
                        Some(s) => match s.data.as_ref().and_then(|d| d.get(&k.key)) {
                            Some(v) => Some(String::from_utf8_lossy(&v.0).into_owned()),
                            None if optional => None,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    k.key, ns, k.name
                                )))
                            }
                        },
                        None if optional => None,
                        None => {
                            return Err(ConfigError(format!("secret \"{}\" not found", k.name)))
                        }
                    }
                } else {
                    None
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            env.retain(|(k, _)| k != &e.name);
            env.push((e.name, v));
        }
    }
    Ok(env)
}

fn quantity_nanos(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<i128> {
    map.and_then(|m| m.get(key))
        .and_then(|q| parse_quantity(&q.0).ok())
        .map(|q| q.nanos())
}

pub async fn describe(
    cx: &Context<'_>,
    c: &Container,
    attempt: u32,
) -> Result<ContainerDesc, ConfigError> {
    let pod = cx.pod;
    let env = environment(cx, c).await?;
    let known: HashMap<String, String> = env.iter().cloned().collect();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut d = ContainerDesc {
        name: c.name.clone(),
        image: crate::runtime::images::store::resolve_name(c.image.as_deref().unwrap_or_default())
            .map_err(|e| ConfigError(e.to_string()))?,
        command: c
            .command
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| expand(a, &known))
            .collect(),
        args: c
            .args
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| expand(a, &known))
            .collect(),
        env,
        working_dir: c.working_dir.clone(),
        tty: c.tty.unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        log_path: cx
            .cfg
            .log_dir
            .join(format!("{ns}_{name}_{uid}"))
            .join(&c.name)
            .join(format!("{attempt}.log")),
        attempt,
        labels: BTreeMap::from([
            ("io.kubernetes.pod.uid".to_string(), uid.clone()),
            ("io.kubernetes.pod.name".to_string(), name.clone()),
            ("io.kubernetes.pod.namespace".to_string(), ns.clone()),
            ("io.kubernetes.container.name".to_string(), c.name.clone()),
        ]),
        ..Default::default()
    };

    let host_net = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut mounts = Vec::new();
    let mounted = |dest: &str| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == dest)
    };
    for (src, dest) in [
        (&cx.etc.hosts, "/etc/hosts"),
        (&cx.etc.resolv, "/etc/resolv.conf"),
        (&cx.etc.hostname, "/etc/hostname"),
    ] {
        if !(mounted(dest) || host_net && dest == "/etc/hostname") {
            mounts.push(MountDesc {
                source: src.clone(),
                destination: dest.into(),
                ..Default::default()
            });
        }
    }
    for m in c.volume_mounts.clone().unwrap_or_default() {
        let Some(base) = cx.volumes.get(&m.name) else {
            return Err(ConfigError(format!(
                "volume {:?} is not defined in the pod",
                m.name
            )));
        };
        let mut source = base.clone();
        let sub = m
            .sub_path_expr
            .as_ref()
            .map(|e| expand(e, &known))
            .or(m.sub_path.clone())
            .unwrap_or_default();
        if !sub.is_empty() {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(ConfigError(format!("invalid subPath {sub:?}")));
            }
            source = source.join(&sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| ConfigError(format!("subPath {sub:?}: {e}")))?;
            }
        }
        mounts.push(MountDesc {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
            tmpfs_size: None,
        });
    }
    let term_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if !term_path.is_empty() {
        let file = cx
            .cfg
            .pod_dir(&uid)
            .join("containers")
            .join(&c.name)
            .join(format!("{attempt}-termination-log"));
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ConfigError(e.to_string()))?;
        }
        std::fs::write(&file, b"").map_err(|e| ConfigError(e.to_string()))?;
        // Writable by whatever user the container runs as, as upstream's
        // kubelet makes it.
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| ConfigError(e.to_string()))?;
        mounts.push(MountDesc {
            source: file,
            destination: term_path,
            ..Default::default()
        });
    }
    d.mounts = mounts;

    let res = c.resources.as_ref();
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    if let Some(mem) = quantity_nanos(limits, "memory") {
        d.resources.memory_limit = Some((mem / 1_000_000_000) as i64);
    }
    if let Some(cpu) = quantity_nanos(limits, "cpu") {
        let milli = (cpu / 1_000_000) as i64;
        d.resources.cpu_quota = Some((milli * 100).max(1000));
        d.resources.cpu_period = Some(100_000);
    }
    let cpu_req = quantity_nanos(requests, "cpu").or_else(|| quantity_nanos(limits, "cpu"));
    d.resources.cpu_shares =
        Some(cpu_req.map_or(2, |n| ((n / 1_000_000) as u64 * 1024 / 1000).max(2)));
    d.resources.oom_score_adj = Some(oom_floor().max(match cx.qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let mem_req = quantity_nanos(requests, "memory").unwrap_or(0) / 1_000_000_000;
            let total = node_memory_bytes().max(1) as i128;
            (1000 - 1000 * mem_req / total).clamp(2, 999) as i32
        }
    }));

    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let s = &mut d.security;
    s.privileged = sc.privileged.unwrap_or(false);
    s.run_as_user = sc.run_as_user.or(psc.run_as_user).map(|u| u as u32);
    s.run_as_group = sc.run_as_group.or(psc.run_as_group).map(|g| g as u32);
    s.supplemental_groups = psc
        .supplemental_groups
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs_group) = psc.fs_group {
        s.supplemental_groups.push(fs_group as u32);
    }
    s.read_only_rootfs = sc.read_only_root_filesystem.unwrap_or(false);
    s.no_new_privs = sc.allow_privilege_escalation == Some(false);
    if let Some(caps) = &sc.capabilities {
        s.cap_add = caps.add.clone().unwrap_or_default();
        s.cap_drop = caps.drop.clone().unwrap_or_default();
    }
    let seccomp = sc.seccomp_profile.clone().or(psc.seccomp_profile.clone());
    s.seccomp = match seccomp.map(|p| p.type_) {
        Some(t) if t == "RuntimeDefault" => SeccompDesc::RuntimeDefault,
        Some(t) if t == "Localhost" => {
            return Err(ConfigError(
                "seccompProfile Localhost is not supported by kone yet".into(),
            ))
        }
        // Upstream's default without --seccomp-default: unconfined.
        _ => SeccompDesc::Unconfined,
    };
    s.sysctls = psc
        .sysctls
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    Ok(d)
}

/// Whether the container must not run as root (runAsNonRoot set).
pub fn requires_non_root(pod: &Pod, c: &Container) -> bool {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    c.security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false)
}

/// The lowest oom_score_adj a container can get. Going below one's own
/// takes CAP_SYS_RESOURCE, which some hosts (containers, sandboxes)
/// withhold; there the container would fail to start, so it keeps ours.
fn oom_floor() -> i32 {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let capable = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0);
    if capable {
        return -1000;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn node_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_known_variables_only() {
        let env = HashMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y$(B)$$(A)", &env), "x1y$(B)$(A)");
        assert_eq!(expand("$(A", &env), "$(A");
    }
}
