//! Builds the OCI runtime spec (config.json) of a container from its
//! description, its image's config and its sandbox, following what
//! containerd's CRI plugin generates for a Kubernetes container.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

use super::desc::{ContainerDesc, SandboxDesc, SeccompDesc};
use super::seccomp;
use super::users::{self, Identity};

/// containerd's default capability set for unprivileged containers.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// runc's masked and read-only /proc and /sys paths for unprivileged containers.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a container's files live on the host.
pub struct Layout<'a> {
    pub rootfs: &'a Path,
    /// The image's snapshot folders, top layer first (for /etc/passwd lookups).
    pub lowerdirs: &'a [PathBuf],
    /// The sandbox's namespace files: None means the host's namespace.
    pub netns: Option<&'a Path>,
    pub ipcns: Option<&'a Path>,
    pub utsns: Option<&'a Path>,
}

/// The process part of the spec: also what `exec` runs with (args replaced).
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub identity: Identity,
}

pub fn build(
    id: &str,
    c: &ContainerDesc,
    sandbox: &SandboxDesc,
    image: &ImageConfiguration,
    layout: &Layout,
) -> anyhow::Result<Value> {
    let process = resolve_process(c, image, layout.lowerdirs)?;
    let sec = &c.security;
    let caps = capabilities(sec.privileged, &sec.cap_add, &sec.cap_drop)?;
    let mut namespaces = vec![
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
        if sandbox.host_pid {
            Value::Null
        } else {
            json!({"type": "pid"})
        },
    ];
    for (kind, path) in [
        ("network", layout.netns),
        ("ipc", layout.ipcns),
        ("uts", layout.utsns),
    ] {
        if let Some(p) = path {
            namespaces.push(json!({"type": kind, "path": p}));
        }
    }
    namespaces.retain(|n| !n.is_null());

    let r = &c.resources;
    let mut resources = json!({
        // Deny every device; libcgroups then allows runc's default set.
        "devices": [{"allow": sec.privileged, "access": "rwm"}],
    });
    if let Some(limit) = r.memory_limit {
        // Swap equal to the limit means no swap, as the kubelet sets it.
        resources["memory"] = json!({"limit": limit, "swap": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = r.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(quota) = r.cpu_quota {
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(r.cpu_period.unwrap_or(100_000)));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(pids) = r.pids_limit {
        resources["pids"] = json!({"limit": pids});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("{}/{}", sandbox.cgroup_parent.trim_end_matches('/'), id),
        "sysctl": sec.sysctls,
    });
    if !sec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if sec.seccomp == SeccompDesc::RuntimeDefault {
            linux["seccomp"] = seccomp::default_profile();
        }
    }

    let mut proc = json!({
        "terminal": c.tty,
        "user": {
            "uid": process.identity.uid,
            "gid": process.identity.gid,
            "additionalGids": process.identity.additional_gids,
        },
        "args": process.args,
        "env": process.env,
        "cwd": process.cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_limit(), "soft": nofile_limit()}],
    });
    // Only when true: libcontainer 0.7 loads seccomp late (after dropping
    // capabilities, which then fails) whenever the field is present at all.
    if sec.no_new_privs {
        proc["noNewPrivileges"] = json!(true);
    }
    if let Some(adj) = r.oom_score_adj {
        proc["oomScoreAdj"] = json!(adj);
    }

    // No "hostname": containers join the sandbox's UTS namespace (or the
    // host's), where the supervisor already set it.
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": proc,
        "root": {"path": layout.rootfs, "readonly": sec.read_only_rootfs},
        "mounts": mounts(c, sec.privileged),
        "linux": linux,
        "annotations": {"io.kubernetes.container.name": c.name},
    });
    // Catch a malformed spec here rather than in the supervisor.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .context("building the OCI runtime spec")?;
    Ok(spec)
}

/// Containers get as many open files as the node allows, up to containerd's
/// 1048576 (raising past our own hard limit would need CAP_SYS_RESOURCE).
fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid out pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok {
        lim.rlim_max.min(1_048_576)
    } else {
        1024
    }
}

/// Kubernetes' rules: `command` replaces the entrypoint and drops the image's
/// cmd; `args` replaces cmd; env is the image's, then the container's.
pub fn resolve_process(
    c: &ContainerDesc,
    image: &ImageConfiguration,
    lowerdirs: &[PathBuf],
) -> anyhow::Result<Process> {
    let cfg = image.config().as_ref();
    let entrypoint = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
    let cmd = cfg.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let mut args = if c.command.is_empty() {
        entrypoint
    } else {
        c.command.clone()
    };
    if !c.args.is_empty() {
        args.extend(c.args.iter().cloned());
    } else if c.command.is_empty() {
        args.extend(cmd);
    }
    if args.is_empty() {
        bail!(
            "no command specified: the image has no entrypoint or cmd and the container sets none"
        );
    }

    let mut env: Vec<String> = cfg.and_then(|c| c.env().clone()).unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    for (k, v) in &c.env {
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    if c.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }

    let cwd = c
        .working_dir
        .clone()
        .or_else(|| cfg.and_then(|c| c.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let image_user = cfg.and_then(|c| c.user().clone()).unwrap_or_default();
    let identity = users::resolve(
        &image_user,
        c.security.run_as_user,
        c.security.run_as_group,
        &c.security.supplemental_groups,
        lowerdirs,
    )?;
    Ok(Process {
        args,
        env,
        cwd,
        identity,
    })
}

fn mounts(c: &ContainerDesc, privileged: bool) -> Vec<Value> {
    let ro = |o: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        if !privileged {
            v.push("ro".into());
        }
        v
    };
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro(&["nosuid", "noexec", "nodev"])}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ro(&["nosuid", "noexec", "nodev", "relatime"])}),
    ];
    for mount in &c.mounts {
        let mut options = vec![];
        if mount.read_only {
            options.push("ro".to_string());
        }
        m.push(match mount.tmpfs_size {
            Some(size) => {
                options.extend(["nosuid".into(), "nodev".into(), format!("size={size}")]);
                json!({"destination": mount.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
            None => {
                options.extend(["rbind".into(), "rprivate".into()]);
                json!({"destination": mount.destination, "type": "bind", "source": mount.source, "options": options})
            }
        });
    }
    m
}

/// The capability set: all the kernel has for privileged containers, else
/// containerd's defaults with the pod's adds and drops ("ALL" allowed in both).
pub fn capabilities(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> anyhow::Result<Vec<String>> {
    let all: BTreeSet<String> = caps::runtime::thread_all_supported()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    if privileged {
        return Ok(all.into_iter().collect());
    }
    let canonical = |name: &str| -> anyhow::Result<String> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        caps::Capability::from_str(&full)
            .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
        Ok(full)
    };
    let mut set: BTreeSet<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for d in drop {
        if d.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&canonical(d)?);
        }
    }
    for a in add {
        if a.eq_ignore_ascii_case("ALL") {
            set.extend(all.iter().cloned());
        } else {
            set.insert(canonical(a)?);
        }
    }
    Ok(set.into_iter().filter(|c| all.contains(c)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::containers::desc::SecurityDesc;

    fn image(entry: &[&str], cmd: &[&str]) -> ImageConfiguration {
        serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {
                "Entrypoint": entry, "Cmd": cmd,
                "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv",
            }
        }))
        .unwrap()
    }

    fn container() -> ContainerDesc {
        ContainerDesc {
            name: "c".into(),
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let img = image(&["/entry"], &["default"]);
        let mut c = container();
        assert_eq!(
            resolve_process(&c, &img, &[]).unwrap().args,
            ["/entry", "default"]
        );
        c.args = vec!["x".into()];
        assert_eq!(
            resolve_process(&c, &img, &[]).unwrap().args,
            ["/entry", "x"]
        );
        c.command = vec!["/bin/sh".into()];
        c.args.clear();
        assert_eq!(resolve_process(&c, &img, &[]).unwrap().args, ["/bin/sh"]);
        let err = resolve_process(&container(), &image(&[], &[]), &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("no command"));
    }

    #[test]
    fn env_overrides_image_and_cwd_defaults() {
        let mut c = container();
        c.env = vec![("A".into(), "2".into()), ("B".into(), "3".into())];
        let p = resolve_process(&c, &image(&["/e"], &[]), &[]).unwrap();
        assert_eq!(p.env, ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd, "/srv");
    }

    #[test]
    fn capabilities_add_drop_and_all() {
        let caps = capabilities(false, &["NET_ADMIN".into()], &["chown".into()]).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(capabilities(false, &[], &["ALL".into()])
            .unwrap()
            .is_empty());
        assert!(capabilities(false, &["BOGUS".into()], &[]).is_err());
        assert!(capabilities(true, &[], &[]).unwrap().len() > DEFAULT_CAPS.len());
    }

    #[test]
    fn spec_has_sandbox_namespaces_limits_and_security() {
        let mut c = container();
        c.command = vec!["/bin/true".into()];
        c.resources.memory_limit = Some(64 << 20);
        c.resources.pids_limit = Some(10);
        c.security = SecurityDesc {
            read_only_rootfs: true,
            ..Default::default()
        };
        let sandbox = SandboxDesc {
            cgroup_parent: "/kone/pod1".into(),
            ..Default::default()
        };
        let net = PathBuf::from("/run/kone/pods/p/ns/net");
        let layout = Layout {
            rootfs: Path::new("/b/rootfs"),
            lowerdirs: &[],
            netns: Some(&net),
            ipcns: None,
            utsns: None,
        };
        let spec = build("cid", &c, &sandbox, &image(&[], &[]), &layout).unwrap();
        assert_eq!(spec["linux"]["cgroupsPath"], "/kone/pod1/cid");
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(spec["root"]["readonly"], true);
        assert!(spec["linux"]["seccomp"].is_object());
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/kone/pods/p/ns/net"));
        assert!(ns.iter().any(|n| n["type"] == "pid"));
    }
}
