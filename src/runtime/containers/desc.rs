//! What a container needs, in Kubernetes terms: the kubelet fills these from a
//! pod's container spec, `kone runtime run` from its flags, and `spec.rs`
//! turns them into an OCI runtime spec.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A pod sandbox: the namespaces its containers share. There is no pause
/// container; the supervisor holds the namespaces as bind-mounted nsfs files.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SandboxDesc {
    /// Unique id, also the supervisor's folder name under `<run-dir>/pods/`.
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub hostname: String,
    /// Share the host's network namespace (hostNetwork pods).
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// Absolute cgroup parent for every container of the pod, e.g.
    /// `/kone/kubepods/besteffort/pod<uid>`.
    pub cgroup_parent: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ContainerDesc {
    /// The Kubernetes container name (unique in its pod).
    pub name: String,
    /// Image reference as the store names it.
    pub image: String,
    /// Overrides the image's entrypoint when not empty (Kubernetes `command`).
    pub command: Vec<String>,
    /// Overrides the image's cmd when `command` or `args` is set (Kubernetes `args`).
    pub args: Vec<String>,
    /// Appended after the image's environment; later entries win.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<MountDesc>,
    pub resources: ResourcesDesc,
    pub security: SecurityDesc,
    pub tty: bool,
    /// Keep a stdin pipe open for attach.
    pub stdin: bool,
    /// CRI log file the supervisor writes the container's output to.
    pub log_path: PathBuf,
    /// Kubernetes restart count, recorded for `kone runtime ps`.
    pub attempt: u32,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct MountDesc {
    /// Host path for bind mounts; ignored for tmpfs.
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// A tmpfs of this many bytes instead of a bind mount (emptyDir medium Memory).
    pub tmpfs_size: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ResourcesDesc {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
    pub oom_score_adj: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub enum SeccompDesc {
    #[default]
    RuntimeDefault,
    Unconfined,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SecurityDesc {
    pub privileged: bool,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub supplemental_groups: Vec<u32>,
    pub read_only_rootfs: bool,
    /// Kubernetes `allowPrivilegeEscalation: false` sets no_new_privs.
    pub no_new_privs: bool,
    /// Capability names without the `CAP_` prefix, as in a pod spec.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub seccomp: SeccompDesc,
    pub sysctls: BTreeMap<String, String>,
}
