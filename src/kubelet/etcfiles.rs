//! A pod's /etc/hosts, /etc/resolv.conf and /etc/hostname, written by the
//! kubelet and bind-mounted into each container, following dnsPolicy,
//! dnsConfig, hostAliases, hostname and subdomain as upstream does.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::KubeletConfig;

pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv: PathBuf,
    pub hostname: PathBuf,
}

/// The pod's hostname: spec.hostname or the pod name, cut to 63 characters.
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

pub fn hosts(pod: &Pod, cfg: &KubeletConfig, pod_ip: Option<&str>) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let host = hostname(pod);
    if let Some(ip) = pod_ip {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        match spec.and_then(|s| s.subdomain.as_deref()) {
            Some(sub) if !sub.is_empty() => out.push_str(&format!(
                "{ip}\t{host}.{sub}.{ns}.svc.{}\t{host}\n",
                cfg.cluster_domain
            )),
            _ => out.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = spec
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

pub fn resolv_conf(pod: &Pod, cfg: &KubeletConfig) -> String {
    let spec = pod.spec.as_ref();
    let host_net = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_field = |key: &str| -> Vec<String> {
        host.lines()
            .filter_map(|l| l.strip_prefix(key))
            .flat_map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
            .collect()
    };
    let cluster_first =
        policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_net);
    let (mut servers, mut searches, mut options) = match policy.as_str() {
        "None" => (vec![], vec![], vec![]),
        _ if cluster_first => (
            vec![cfg.cluster_dns.to_string()],
            vec![
                format!("{ns}.svc.{}", cfg.cluster_domain),
                format!("svc.{}", cfg.cluster_domain),
                cfg.cluster_domain.clone(),
            ],
            vec!["ndots:5".to_string()],
        ),
        _ => (
            host_field("nameserver"),
            host_field("search"),
            host_field("options"),
        ),
    };
    if cluster_first {
        searches.extend(host_field("search"));
    }
    if let Some(dc) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(dc.nameservers.clone().unwrap_or_default());
        searches.extend(dc.searches.clone().unwrap_or_default());
        for o in dc.options.clone().unwrap_or_default() {
            let name = o.name.unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Writes the three files under the pod's folder.
pub fn write(
    dir: &Path,
    pod: &Pod,
    cfg: &KubeletConfig,
    pod_ip: Option<&str>,
) -> std::io::Result<EtcFiles> {
    fs::create_dir_all(dir)?;
    let files = EtcFiles {
        hosts: dir.join("etc-hosts"),
        resolv: dir.join("resolv.conf"),
        hostname: dir.join("etc-hostname"),
    };
    let host_net = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let hosts_text = if host_net {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        hosts(pod, cfg, pod_ip)
    };
    fs::write(&files.hosts, hosts_text)?;
    fs::write(&files.resolv, resolv_conf(pod, cfg))?;
    let name = if host_net {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        hostname(pod)
    };
    fs::write(&files.hostname, format!("{name}\n"))?;
    Ok(files)
}
