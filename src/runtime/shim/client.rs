//! Talking to a pod's supervisor: spawn it, or find the one already running
//! (after an agent restart) by its socket under `<run-dir>/pods/<id>/`.
//! Blocking calls, which async callers wrap in `spawn_blocking`, but for
//! [`ShimClient::exited`], which waits as long as a container runs.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::protocol::{
    self, Attached, ContainerState, CreateRequest, ExecStarted, Reply, Request, ShimInfo,
};
use crate::runtime::containers::SandboxDesc;

#[derive(Clone, Debug)]
pub struct ShimClient {
    dir: PathBuf,
}

pub fn pods_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("pods")
}

impl ShimClient {
    /// Starts the supervisor of `sandbox`, or returns the running one.
    pub fn spawn(exe: &Path, run_dir: &Path, sandbox: &SandboxDesc) -> anyhow::Result<ShimClient> {
        if sandbox.id.is_empty() || sandbox.id.contains('/') || sandbox.id.starts_with('.') {
            bail!("invalid sandbox id {:?}", sandbox.id);
        }
        let dir = pods_dir(run_dir).join(&sandbox.id);
        let client = ShimClient { dir: dir.clone() };
        if client.info().is_ok() {
            return Ok(client);
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::runtime::images::store::write_atomic(
            &dir.join("sandbox.json"),
            &serde_json::to_vec_pretty(sandbox)?,
        )?;
        let out = Command::new(exe)
            .arg("shim")
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("starting the supervisor {}", exe.display()))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            let msg = String::from_utf8_lossy(&out.stderr);
            bail!("{}", msg.trim().trim_start_matches("kone shim: "));
        }
        Ok(client)
    }

    /// The supervisor of a sandbox that should already run.
    pub fn connect(run_dir: &Path, id: &str) -> anyhow::Result<ShimClient> {
        let client = ShimClient {
            dir: pods_dir(run_dir).join(id),
        };
        client.info()?;
        Ok(client)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends one request; returns the reply's value and any descriptors.
    pub fn call(&self, req: &Request) -> anyhow::Result<(Value, Vec<OwnedFd>)> {
        receive(&self.send(req)?)
    }

    /// Sends one request; the reply is read from the returned connection.
    fn send(&self, req: &Request) -> anyhow::Result<UnixStream> {
        let sock = self.dir.join("shim.sock");
        let mut conn = UnixStream::connect(&sock)
            .with_context(|| format!("connecting to the supervisor at {}", sock.display()))?;
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        conn.write_all(&line)?;
        Ok(conn)
    }

    fn call_as<T: DeserializeOwned>(&self, req: &Request) -> anyhow::Result<T> {
        let (v, _) = self.call(req)?;
        Ok(serde_json::from_value(v)?)
    }

    pub fn info(&self) -> anyhow::Result<ShimInfo> {
        self.call_as(&Request::Info)
    }

    pub fn create(&self, req: CreateRequest) -> anyhow::Result<ContainerState> {
        self.call_as(&Request::Create(Box::new(req)))
    }

    pub fn start(&self, id: &str) -> anyhow::Result<ContainerState> {
        self.call_as(&Request::Start { id: id.into() })
    }

    pub fn stop(
        &self,
        id: &str,
        timeout_secs: u64,
        signal: Option<i32>,
    ) -> anyhow::Result<ContainerState> {
        self.call_as(&Request::Stop {
            id: id.into(),
            timeout_secs,
            signal,
        })
    }

    pub fn kill(&self, id: &str, signal: i32) -> anyhow::Result<()> {
        self.call(&Request::Kill {
            id: id.into(),
            signal,
        })
        .map(|_| ())
    }

    pub fn wait(&self, id: &str) -> anyhow::Result<ContainerState> {
        self.call_as(&Request::Wait { id: id.into() })
    }

    /// A wait whose answer is collected later: a follower of the log
    /// sleeps on it and wakes the moment the container has exited.
    pub fn watch_exit(&self, id: &str) -> anyhow::Result<ExitWatch> {
        Ok(ExitWatch {
            conn: self.send(&Request::Wait { id: id.into() })?,
        })
    }

    /// Resolves once container `id` has exited, or the supervisor cannot
    /// tell (it is gone): the pod worker's news of an exit without polling.
    /// The supervisor parks the request until then, so this holds no thread.
    pub async fn exited(&self, id: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut line) = serde_json::to_vec(&Request::Wait { id: id.into() }) else {
            return;
        };
        line.push(b'\n');
        let Ok(mut conn) = tokio::net::UnixStream::connect(self.dir.join("shim.sock")).await else {
            return;
        };
        if conn.write_all(&line).await.is_err() {
            return;
        }
        // The reply, then the end of the stream; what it says is read later
        // through `list`.
        let mut reply = Vec::new();
        let _ = conn.read_to_end(&mut reply).await;
    }

    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.call(&Request::Delete { id: id.into() }).map(|_| ())
    }

    pub fn list(&self) -> anyhow::Result<Vec<ContainerState>> {
        self.call_as(&Request::List)
    }

    pub fn exec(
        &self,
        id: &str,
        process: Value,
        stdin: bool,
    ) -> anyhow::Result<(i32, Vec<OwnedFd>)> {
        let (v, fds) = self.call(&Request::Exec {
            id: id.into(),
            process,
            stdin,
        })?;
        let started: ExecStarted = serde_json::from_value(v)?;
        Ok((started.pid, fds))
    }

    pub fn exec_wait(&self, pid: i32) -> anyhow::Result<i32> {
        self.call_as(&Request::ExecWait { pid })
    }

    pub fn attach(&self, id: &str) -> anyhow::Result<(Attached, Vec<OwnedFd>)> {
        let (v, fds) = self.call(&Request::Attach { id: id.into() })?;
        Ok((serde_json::from_value(v)?, fds))
    }

    /// Kills what still runs, removes every container and the sandbox.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        self.call(&Request::Shutdown).map(|_| ())
    }

    /// Container states recorded on disk: what `kone runtime` can still show
    /// when the supervisor is gone.
    pub fn recorded(&self) -> Vec<ContainerState> {
        let Ok(entries) = fs::read_dir(self.dir.join("containers")) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|raw| serde_json::from_slice(&raw).ok())
            .collect()
    }
}

fn receive(conn: &UnixStream) -> anyhow::Result<(Value, Vec<OwnedFd>)> {
    let (reply, fds) = protocol::recv_line(conn)?;
    match serde_json::from_slice::<Reply>(&reply)? {
        Reply::Ok(v) => Ok((v, fds)),
        Reply::Error(e) => Err(anyhow!(e)),
    }
}

/// A Wait request in flight (see `ShimClient::watch_exit`).
pub struct ExitWatch {
    conn: UnixStream,
}

impl ExitWatch {
    /// Waits at most `timeout` for the answer; true once it is there (the
    /// container exited, is unknown, or its supervisor is gone).
    pub fn answered_within(&self, timeout: Duration) -> bool {
        let mut fd = libc::pollfd {
            fd: self.conn.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        // An interrupted poll is a timeout; any other error ends the wait.
        n > 0 || (n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted)
    }

    /// The container's final state (blocks until it exited).
    pub fn state(self) -> anyhow::Result<ContainerState> {
        let (v, _) = receive(&self.conn)?;
        Ok(serde_json::from_value(v)?)
    }
}

/// Ids of the sandboxes with a supervisor folder under the run dir.
pub fn sandbox_ids(run_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(pods_dir(run_dir)) else {
        return vec![];
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("sandbox.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}
