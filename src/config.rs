//! Command-line flags, KONE_* environment variables and the config file.
//!
//! Precedence like k3s: flags beat environment variables, which beat the
//! YAML file (/etc/kone/config.yaml, keys are the flag names).

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "kone", version, about = "Kubernetes in one binary")]
pub struct Cli {
    /// Log more (debug level).
    #[arg(long, global = true, env = "KONE_DEBUG")]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane, and a node unless --disable-agent.
    Server(Box<ServerArgs>),
    /// Run a node joined to a server (--server URL --token T).
    Agent(Box<AgentArgs>),
    /// Run the kubectl found on PATH against this machine's cluster.
    #[command(disable_help_flag = true)]
    Kubectl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Manage container images: import archives, list, inspect, remove, GC.
    Images(ImagesArgs),
    /// Inspect and debug this node's pods and containers (the crictl role).
    Runtime(RuntimeArgs),
    /// A pod's container supervisor; the agent starts one per pod.
    #[command(hide = true)]
    Shim {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ImagesArgs {
    /// Folder for state (images live under DATA_DIR/agent/).
    #[arg(
        long,
        env = "KONE_DATA_DIR",
        default_value = "/var/lib/kone",
        global = true
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ImagesCommand {
    /// Import docker-save or OCI-layout archives (.tar, .tar.gz, .tar.zst).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        /// Print names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry (mirrors and auth from registries.yaml).
    Pull {
        /// Image reference: name[:tag] or name@sha256:digest.
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show an image's record and config as JSON.
    Inspect { name: String },
    /// Remove image names (blobs and snapshots stay until gc).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove blobs and snapshots no image uses.
    Gc,
}

/// Where images come from: k3s's registry flags.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registry mirrors, auth and TLS, in the k3s registries.yaml format
    /// (default /etc/kone/registries.yaml, used when it exists).
    #[arg(long, env = "KONE_PRIVATE_REGISTRY")]
    pub private_registry: Option<PathBuf>,
    /// Pull from the mirrors only, never falling back to a mirrored
    /// registry's own endpoint.
    #[arg(long, env = "KONE_DISABLE_DEFAULT_REGISTRY_ENDPOINT")]
    pub disable_default_registry_endpoint: bool,
}

impl RegistryArgs {
    pub fn load(&self) -> anyhow::Result<crate::runtime::images::RegistryConfig> {
        Ok(
            crate::runtime::images::RegistryConfig::load(self.private_registry.as_deref())?
                .with_default_endpoint(!self.disable_default_registry_endpoint),
        )
    }
}

/// How this machine runs as a node (flags shared by `server` and `agent`).
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Node name (default: the hostname).
    #[arg(long, env = "KONE_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default route's interface).
    #[arg(long, env = "KONE_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Folder for runtime state: pod supervisors, sockets, namespaces.
    #[arg(long, env = "KONE_RUN_DIR", default_value = "/run/kone")]
    pub run_dir: PathBuf,
    /// Folder for container logs.
    #[arg(long, env = "KONE_POD_LOG_DIR", default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// Cluster DNS server pods resolve names with (dnsPolicy ClusterFirst).
    #[arg(long, env = "KONE_CLUSTER_DNS", default_value = "10.43.0.10")]
    pub cluster_dns: std::net::Ipv4Addr,
    /// Cluster domain.
    #[arg(long, env = "KONE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Port of the kubelet API (logs, exec, attach, port-forward).
    #[arg(long, env = "KONE_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    #[command(flatten)]
    pub ops: NodeOpsArgs,
}

/// How the node protects itself: pod limits, eviction, image GC.
#[derive(Args, Debug, Clone)]
pub struct NodeOpsArgs {
    /// Most processes a pod may run (its pod cgroup's pids.max); -1: no limit.
    #[arg(long, env = "KONE_POD_MAX_PIDS", default_value_t = -1, allow_negative_numbers = true)]
    pub pod_max_pids: i64,
    /// Hard eviction thresholds, upstream's syntax: `signal<quantity` or
    /// `signal<percent%` for memory.available and nodefs.available.
    #[arg(
        long,
        env = "KONE_EVICTION_HARD",
        default_value = "memory.available<100Mi,nodefs.available<10%"
    )]
    pub eviction_hard: String,
    /// Disk usage (percent) of the image filesystem that starts image GC.
    #[arg(long, env = "KONE_IMAGE_GC_HIGH_THRESHOLD", default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Disk usage (percent) image GC frees down to.
    #[arg(long, env = "KONE_IMAGE_GC_LOW_THRESHOLD", default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// How long an image must have gone unused before image GC may remove
    /// it (`90s`, `2m`, `1h`).
    #[arg(long, env = "KONE_MINIMUM_IMAGE_TTL_DURATION", default_value = "2m", value_parser = parse_duration)]
    pub minimum_image_ttl_duration: std::time::Duration,
}

impl NodeArgs {
    /// `--node-name`, else the hostname in lower case.
    pub fn name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().to_lowercase())
                .unwrap_or_else(|_| "kone".into())
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Folder for state (images and container layers live under DATA_DIR/agent/).
    #[arg(
        long,
        env = "KONE_DATA_DIR",
        default_value = "/var/lib/kone",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Folder for runtime state: supervisors, sockets, namespaces.
    #[arg(long, env = "KONE_RUN_DIR", default_value = "/run/kone", global = true)]
    pub run_dir: PathBuf,
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RuntimeCommand {
    /// Run a container in a new pod sandbox (for debugging a node).
    Run(Box<RunArgs>),
    /// List containers.
    Ps {
        /// Include exited containers.
        #[arg(short, long)]
        all: bool,
        /// Print ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List pod sandboxes.
    Pods,
    /// Show a container's state as JSON.
    Inspect { id: String },
    /// Print a container's log.
    Logs {
        id: String,
        /// Keep streaming until the container exits.
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command in a running container.
    Exec {
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Pass stdin to the command.
        #[arg(short, long)]
        interactive: bool,
        id: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        timeout: u64,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove exited containers (-f stops running ones first).
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove pod sandboxes with all their containers.
    Rmp {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Container name (default: from the image).
    #[arg(long)]
    pub name: Option<String>,
    /// Run in this existing pod sandbox instead of a new one.
    #[arg(long)]
    pub pod: Option<String>,
    /// Hostname of a new sandbox.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Print the container id and return instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container (and its new sandbox) after it exits.
    #[arg(long)]
    pub rm: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub interactive: bool,
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Memory limit, a Kubernetes quantity (64Mi).
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit, a Kubernetes quantity (500m).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub read_only: bool,
    #[arg(long)]
    pub privileged: bool,
    #[arg(long)]
    pub cap_add: Vec<String>,
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Seccomp profile: runtime-default or unconfined.
    #[arg(long, default_value = "runtime-default")]
    pub seccomp: String,
    /// Run as this uid (and gid, as UID:GID).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Bind mount HOST:CONTAINER[:ro] (repeatable).
    #[arg(short, long)]
    pub volume: Vec<String>,
    /// Share the host's network namespace.
    #[arg(long)]
    pub host_network: bool,
    /// Folder for container logs.
    #[arg(long, default_value = "/var/log/pods")]
    pub log_dir: PathBuf,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The server to join, as https://HOST:6443.
    #[arg(long, env = "KONE_URL")]
    pub server: String,
    /// The server's join token (`K10<ca-sha256>::server:<secret>`, or the
    /// bare secret), as `cat /var/lib/kone/server/token` shows it.
    #[arg(long, env = "KONE_TOKEN")]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long, env = "KONE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Folder for state: images, pod volumes, IPAM, the kubelet kubeconfig.
    #[arg(long, env = "KONE_DATA_DIR", default_value = "/var/lib/kone")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

impl AgentArgs {
    pub fn token(&self) -> anyhow::Result<String> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(p)) => crate::agent::read_token_file(p)?,
            (None, None) => bail!("kone agent needs --token or --token-file"),
        };
        if token.is_empty() {
            bail!("the join token is empty");
        }
        Ok(token)
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Folder for state: the datastore, certificates, tokens.
    #[arg(long, env = "KONE_DATA_DIR", default_value = "/var/lib/kone")]
    pub data_dir: PathBuf,
    /// HTTPS port of the API server.
    #[arg(long, env = "KONE_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address the API server listens on.
    #[arg(long, env = "KONE_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Address other nodes and clients reach the server at.
    #[arg(long, env = "KONE_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<IpAddr>,
    /// Extra names or IPs for the serving certificate (repeatable).
    #[arg(long, env = "KONE_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Where to write the admin kubeconfig.
    #[arg(
        long,
        env = "KONE_WRITE_KUBECONFIG",
        default_value = "/etc/kone/kone.yaml"
    )]
    pub write_kubeconfig: PathBuf,
    /// File mode of the admin kubeconfig, in octal.
    #[arg(long, env = "KONE_WRITE_KUBECONFIG_MODE", default_value = "0600")]
    pub write_kubeconfig_mode: String,
    /// Shared secret nodes join with (generated if not given).
    #[arg(long, env = "KONE_TOKEN")]
    pub token: Option<String>,
    /// ClusterIP range of Services.
    #[arg(long, env = "KONE_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: ipnet::Ipv4Net,
    /// Pod network range.
    #[arg(long, env = "KONE_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// NodePort range, as FIRST-LAST.
    #[arg(
        long,
        env = "KONE_SERVICE_NODE_PORT_RANGE",
        default_value = "30000-32767"
    )]
    pub service_node_port_range: String,
    /// Static bearer tokens (kube-apiserver CSV: token,user,uid,"group1,group2").
    #[arg(long, env = "KONE_TOKEN_AUTH_FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// Run the control plane only, without a node.
    #[arg(long, env = "KONE_DISABLE_AGENT")]
    pub disable_agent: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    /// YAML config file whose keys are these flags' names.
    #[arg(long, env = "KONE_CONFIG", default_value = "/etc/kone/config.yaml")]
    pub config: PathBuf,
}

impl ServerArgs {
    pub fn node_port_range(&self) -> anyhow::Result<(u16, u16)> {
        let (a, b) = self
            .service_node_port_range
            .split_once('-')
            .ok_or_else(|| {
                anyhow!(
                    "--service-node-port-range must be FIRST-LAST, got {:?}",
                    self.service_node_port_range
                )
            })?;
        let (a, b): (u16, u16) = (
            a.trim()
                .parse()
                .context("--service-node-port-range: first port")?,
            b.trim()
                .parse()
                .context("--service-node-port-range: last port")?,
        );
        if a == 0 || a > b {
            bail!("--service-node-port-range: {a}-{b} is not a range");
        }
        Ok((a, b))
    }

    pub fn kubeconfig_mode(&self) -> anyhow::Result<u32> {
        u32::from_str_radix(self.write_kubeconfig_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                anyhow!(
                    "--write-kubeconfig-mode must be an octal mode like 0644, got {:?}",
                    self.write_kubeconfig_mode
                )
            })
    }
}

/// Parse the command line, filling flags given neither on the command line
/// nor in the environment from the config file.
pub fn parse(argv: Vec<OsString>) -> anyhow::Result<Cli> {
    let matches = match Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    let Some(("server", sub)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches).map_err(|e| anyhow!(e.to_string()));
    };
    let path = sub
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/etc/kone/config.yaml"));
    let explicit = !matches!(
        sub.value_source("config"),
        Some(ValueSource::DefaultValue) | None
    );
    let extra = match std::fs::read_to_string(&path) {
        Ok(text) => file_args(&path, &text, |id| {
            matches!(sub.value_source(id), Some(ValueSource::DefaultValue) | None)
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Vec::new(),
        Err(e) => return Err(anyhow!("reading config file {}: {e}", path.display())),
    };
    let mut full = argv;
    full.extend(extra);
    let matches = match Cli::command().try_get_matches_from(&full) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    Cli::from_arg_matches(&matches).map_err(|e| anyhow!(e.to_string()))
}

/// The config file as extra `--flag value` arguments, for the flags `unset`
/// says are not set otherwise.
fn file_args(
    path: &Path,
    text: &str,
    unset: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<OsString>> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .with_context(|| format!("config file {} is not valid YAML", path.display()))?;
    let map = match doc {
        serde_yaml_ng::Value::Mapping(m) => m,
        serde_yaml_ng::Value::Null => return Ok(Vec::new()),
        _ => bail!(
            "config file {} must be a mapping of flag names to values",
            path.display()
        ),
    };
    let known: Vec<String> = Cli::command()
        .find_subcommand("server")
        .map(|c| {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (k, v) in map {
        let key = k
            .as_str()
            .ok_or_else(|| anyhow!("config file {}: keys must be strings", path.display()))?;
        if !known.iter().any(|n| n == key) || key == "config" {
            bail!("config file {}: unknown key {key:?}", path.display());
        }
        if !unset(&key.replace('-', "_")) {
            continue;
        }
        let flag = format!("--{key}");
        let scalar = |v: &serde_yaml_ng::Value| -> anyhow::Result<String> {
            match v {
                serde_yaml_ng::Value::String(s) => Ok(s.clone()),
                serde_yaml_ng::Value::Number(n) => Ok(n.to_string()),
                serde_yaml_ng::Value::Bool(b) => Ok(b.to_string()),
                _ => bail!(
                    "config file {}: {key} must be a string, number, bool or list",
                    path.display()
                ),
            }
        };
        match &v {
            serde_yaml_ng::Value::Bool(true) => out.push(OsString::from(flag)),
            serde_yaml_ng::Value::Bool(false) => {}
            serde_yaml_ng::Value::Sequence(items) => {
                for item in items {
                    out.push(OsString::from(format!("{flag}={}", scalar(item)?)));
                }
            }
            other => out.push(OsString::from(format!("{flag}={}", scalar(other)?))),
        }
    }
    Ok(out)
}

/// A duration as upstream's flags take the simple ones: `0`, `30s`, `2m`, `1h`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration {s:?}: expected e.g. 30s, 2m, 1h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(cli: Cli) -> ServerArgs {
        match cli.command {
            Command::Server(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_beat_file_and_file_fills_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "https-listen-port: 7443\ndata-dir: /tmp/from-file\ntls-san:\n  - a.example\n  - 10.0.0.9\ndisable-agent: true\nprivate-registry: /tmp/reg.yaml\n")
            .expect("write");
        let argv: Vec<OsString> = [
            "kone",
            "server",
            "--config",
            cfg.to_str().expect("path"),
            "--data-dir",
            "/tmp/from-flag",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let a = server(parse(argv).expect("parse"));
        assert_eq!(a.data_dir, PathBuf::from("/tmp/from-flag"));
        assert_eq!(a.https_listen_port, 7443);
        assert_eq!(a.tls_san, vec!["a.example", "10.0.0.9"]);
        assert!(a.disable_agent);
        assert_eq!(
            a.registry.private_registry,
            Some(PathBuf::from("/tmp/reg.yaml"))
        );
        assert!(!a.registry.disable_default_registry_endpoint);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "no-such-flag: 1\n").expect("write");
        let argv: Vec<OsString> = ["kone", "server", "--config", cfg.to_str().expect("path")]
            .iter()
            .map(OsString::from)
            .collect();
        let err = parse(argv).expect_err("unknown key");
        assert!(err.to_string().contains("no-such-flag"));
    }

    #[test]
    fn ranges_and_modes() {
        let argv: Vec<OsString> = ["kone", "server", "--config", "/nonexistent/kone-test.yaml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(
            parse(argv).is_err(),
            "an explicit missing config file is an error"
        );
        let argv: Vec<OsString> = ["kone", "server", "--write-kubeconfig-mode", "644"]
            .iter()
            .map(OsString::from)
            .collect();
        let a = server(parse(argv).expect("parse"));
        assert_eq!(a.kubeconfig_mode().expect("mode"), 0o644);
        assert_eq!(a.node_port_range().expect("range"), (30000, 32767));
    }

    #[test]
    fn durations_like_upstream_flags() {
        use std::time::Duration;
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
