//! Containers: pod sandboxes and their containers, run by a per-pod
//! supervisor (`kone shim`) on youki's libcontainer. This is the runtime API
//! the kubelet and `kone runtime` use; every call is blocking.

pub mod desc;
pub mod seccomp;
pub mod spec;
pub mod users;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use oci_spec::image::ImageConfiguration;
use serde_json::Value;

pub use desc::{ContainerDesc, MountDesc, ResourcesDesc, SandboxDesc, SeccompDesc, SecurityDesc};

use super::images::{ImageRecord, Store};
use super::shim::client::{self, ShimClient};
use super::shim::namespaces::NamespaceFiles;
use super::shim::protocol::{Attached, ContainerState, CreateRequest, RootfsDesc};

pub struct Runtime {
    run_dir: PathBuf,
    images: Store,
    /// The kone binary the supervisors run as (`kone shim`).
    exe: PathBuf,
}

impl Runtime {
    pub fn open(data_dir: &Path, run_dir: &Path) -> anyhow::Result<Runtime> {
        let exe = std::env::current_exe().context("finding the kone binary")?;
        // Supervisors leave the caller's working directory behind when they
        // daemonize, and sockets and mounts are found again by path later:
        // a relative --run-dir or --data-dir must not outlive the caller.
        let absolute = |dir: &Path| {
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))
        };
        Ok(Runtime {
            run_dir: absolute(run_dir)?,
            images: Store::open(&absolute(data_dir)?)?,
            exe,
        })
    }

    /// Supervisors run this binary instead of the current one (tests, which
    /// are not the kone binary themselves).
    pub fn with_exe(mut self, exe: PathBuf) -> Runtime {
        self.exe = exe;
        self
    }

    pub fn images(&self) -> &Store {
        &self.images
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Starts a sandbox (idempotent: an existing one is returned).
    pub fn run_sandbox(&self, sandbox: &SandboxDesc) -> anyhow::Result<ShimClient> {
        ShimClient::spawn(&self.exe, &self.run_dir, sandbox)
    }

    pub fn sandbox(&self, id: &str) -> anyhow::Result<ShimClient> {
        ShimClient::connect(&self.run_dir, id)
    }

    pub fn sandbox_ids(&self) -> Vec<String> {
        client::sandbox_ids(&self.run_dir)
    }

    /// An image's config and its snapshot folders (top first), checked to be unpacked.
    fn image_parts(
        &self,
        image: &str,
    ) -> anyhow::Result<(ImageRecord, ImageConfiguration, Vec<PathBuf>)> {
        let record = self
            .images
            .get(image)?
            .ok_or_else(|| anyhow!("image {image:?} not found"))?;
        let config: ImageConfiguration =
            serde_json::from_slice(&self.images.read_blob(&record.config_digest)?)
                .context("reading the image config")?;
        let lowerdirs = self.images.snapshot_dirs(&record);
        if let Some(missing) = lowerdirs.iter().find(|d| !d.is_dir()) {
            anyhow::bail!(
                "image {image:?} is not unpacked ({} missing)",
                missing.display()
            );
        }
        Ok((record, config, lowerdirs))
    }

    /// The user a container would run as (to refuse root under runAsNonRoot).
    pub fn identity(&self, c: &ContainerDesc) -> anyhow::Result<users::Identity> {
        let (_, config, lowerdirs) = self.image_parts(&c.image)?;
        Ok(spec::resolve_process(c, &config, &lowerdirs)?.identity)
    }

    /// Creates (does not start) a container in a running sandbox.
    pub fn create(&self, shim: &ShimClient, c: &ContainerDesc) -> anyhow::Result<ContainerState> {
        let info = shim.info()?;
        let (record, config, lowerdirs) = self.image_parts(&c.image)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let bundle = self.images.containers_dir().join(&id);
        let rootfs = RootfsDesc {
            lowerdirs: lowerdirs.clone(),
            upperdir: bundle.join("upper"),
            workdir: bundle.join("work"),
            target: bundle.join("rootfs"),
        };
        let ns = NamespaceFiles::in_dir(shim.dir(), &info.sandbox);
        let layout = spec::Layout {
            rootfs: &rootfs.target,
            lowerdirs: &lowerdirs,
            netns: ns.net.as_deref(),
            ipcns: ns.ipc.as_deref(),
            utsns: ns.uts.as_deref(),
        };
        let spec = spec::build(&id, c, &info.sandbox, &config, &layout)?;
        fs::create_dir_all(&bundle)?;
        let written = fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec)?,
        )
        .and_then(|_| self.images.pin_snapshots(&bundle, &record));
        let result = written.map_err(anyhow::Error::from).and_then(|_| {
            shim.create(CreateRequest {
                id: id.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                attempt: c.attempt,
                bundle: bundle.clone(),
                rootfs,
                log_path: c.log_path.clone(),
                stdin: c.stdin,
                tty: c.tty,
                cgroup: spec["linux"]["cgroupsPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                labels: c.labels.clone(),
            })
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&bundle);
        }
        result
    }

    /// The OCI process an exec runs: the container's own (user, env, cwd,
    /// capabilities) with new arguments.
    pub fn exec_process(&self, id: &str, args: &[String], tty: bool) -> anyhow::Result<Value> {
        let path = self.images.containers_dir().join(id).join("config.json");
        let spec: Value = serde_json::from_slice(
            &fs::read(&path).with_context(|| format!("container {id} not found"))?,
        )?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(tty);
        Ok(process)
    }

    /// Runs a command in a running container; returns its pid and streams.
    pub fn exec(
        &self,
        shim: &ShimClient,
        id: &str,
        args: &[String],
        tty: bool,
        stdin: bool,
    ) -> anyhow::Result<(i32, Vec<OwnedFd>)> {
        let process = self.exec_process(id, args, tty)?;
        shim.exec(id, process, stdin)
    }

    pub fn attach(&self, shim: &ShimClient, id: &str) -> anyhow::Result<(Attached, Vec<OwnedFd>)> {
        shim.attach(id)
    }

    /// Finds the sandbox that holds a container (by id or unique id prefix).
    pub fn find(&self, id: &str) -> anyhow::Result<(ShimClient, ContainerState)> {
        let mut found = Vec::new();
        for sid in self.sandbox_ids() {
            let Ok(shim) = self.sandbox(&sid) else {
                continue;
            };
            for c in shim.list().unwrap_or_default() {
                if c.id == id || (id.len() >= 4 && c.id.starts_with(id)) {
                    found.push((shim.clone(), c));
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(anyhow!("container {id:?} not found")),
            _ => Err(anyhow!("container id prefix {id:?} is ambiguous")),
        }
    }
}
