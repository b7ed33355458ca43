//! The supervisor's protocol: one JSON request line per connection on
//! `<pod dir>/shim.sock`, one JSON reply line back. Streams never pass through
//! the supervisor's socket: exec and attach replies carry pipe or terminal
//! file descriptors (SCM_RIGHTS) that the caller reads and writes directly.

use std::collections::BTreeMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a container's overlay root is assembled.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RootfsDesc {
    /// Image snapshot folders, top layer first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    pub target: PathBuf,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CreateRequest {
    pub id: String,
    pub name: String,
    pub image: String,
    pub attempt: u32,
    /// Holds config.json; removed with the container.
    pub bundle: PathBuf,
    pub rootfs: RootfsDesc,
    pub log_path: PathBuf,
    pub stdin: bool,
    pub tty: bool,
    /// The container's absolute cgroup path (for OOM-kill accounting).
    pub cgroup: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Info,
    Create(Box<CreateRequest>),
    Start {
        id: String,
    },
    /// Signal (SIGTERM unless given), then SIGKILL after `timeout_secs`;
    /// answers once the container has exited.
    Stop {
        id: String,
        timeout_secs: u64,
        signal: Option<i32>,
    },
    Kill {
        id: String,
        signal: i32,
    },
    /// Answers once the container has exited.
    Wait {
        id: String,
    },
    Delete {
        id: String,
    },
    List,
    /// Runs `process` (an OCI process object) inside a running container.
    /// The reply carries [stdin writer if requested], stdout reader, stderr
    /// reader — or, with a terminal, the terminal's master.
    Exec {
        id: String,
        process: Value,
        stdin: bool,
    },
    ExecWait {
        pid: i32,
    },
    /// The reply carries [input: the container's stdin writer or terminal
    /// master, if any], a copy of its stdout, and of its stderr unless it has
    /// a terminal.
    Attach {
        id: String,
    },
    /// Stop everything, release the sandbox's namespaces and exit.
    Shutdown,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    Exited,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    pub attempt: u32,
    pub status: Status,
    pub pid: Option<i32>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// Completed, Error or OOMKilled once exited.
    pub reason: Option<String>,
    pub log_path: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ShimInfo {
    pub pid: i32,
    pub sandbox: crate::runtime::containers::SandboxDesc,
    pub netns: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ExecStarted {
    pub pid: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Attached {
    /// The first descriptor is an input (stdin pipe or terminal master).
    pub input: bool,
    pub tty: bool,
}

/// A reply: `{"ok": …}` or `{"error": "…"}`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(Value),
    Error(String),
}

/// Writes one line, with `fds` attached to its first byte.
pub fn send_line(sock: &UnixStream, line: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut sent = 0;
    while sent < line.len() {
        let iov = [IoSlice::new(&line[sent..])];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if sent == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        let n = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
            .map_err(io::Error::from)?;
        sent += n;
    }
    Ok(())
}

/// Reads one line and every descriptor that arrived with it.
pub fn recv_line(sock: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 8]);
        let (n, received) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let mut received = Vec::new();
            for c in msg.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these descriptors in
                    // this process for us; nothing else owns them.
                    received.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            (msg.bytes, received)
        };
        fds.extend(received);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the supervisor closed the connection without answering",
            ));
        }
        line.extend_from_slice(&buf[..n]);
        if line.last() == Some(&b'\n') {
            line.pop();
            return Ok((line, fds));
        }
    }
}
