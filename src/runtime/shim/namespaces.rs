//! A pod's shared namespaces without a pause container: a short-lived child
//! unshares them, the supervisor bind-mounts `/proc/<child>/ns/*` onto files
//! (as `ip netns add` does), and containers join those files by path.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, sethostname, ForkResult};

use crate::runtime::containers::SandboxDesc;

/// The namespace files of a sandbox (None: the host's namespace).
#[derive(Debug, Clone, Default)]
pub struct NamespaceFiles {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

impl NamespaceFiles {
    pub fn in_dir(dir: &Path, sandbox: &SandboxDesc) -> NamespaceFiles {
        let file = |name: &str, host: bool| (!host).then(|| dir.join("ns").join(name));
        NamespaceFiles {
            net: file("net", sandbox.host_network),
            ipc: file("ipc", sandbox.host_ipc),
            // hostNetwork pods keep the host's hostname, as upstream.
            uts: file("uts", sandbox.host_network),
        }
    }

    fn each(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        [("net", &self.net), ("ipc", &self.ipc), ("uts", &self.uts)]
            .into_iter()
            .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
    }
}

/// Creates the namespaces and pins them to their files. Must run while the
/// process is single-threaded (it forks).
pub fn create(files: &NamespaceFiles, hostname: &str) -> anyhow::Result<()> {
    let mut flags = CloneFlags::empty();
    if files.net.is_some() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if files.ipc.is_some() {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if files.uts.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if flags.is_empty() {
        return Ok(());
    }
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: the supervisor is single-threaded here; the child only makes
    // system calls and exits without returning.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = unshare(flags).is_ok()
                && (files.uts.is_none() || hostname.is_empty() || sethostname(hostname).is_ok())
                && (files.net.is_none() || loopback_up().is_ok());
            let _ = File::from(ready_w).write_all(if ok { b"1" } else { b"0" });
            let mut b = [0u8; 1];
            let _ = File::from(done_r).read(&mut b);
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut b = [0u8; 1];
            let got = File::from(ready_r).read(&mut b);
            let result = if matches!(got, Ok(1)) && b[0] == b'1' {
                pin(files, child.as_raw())
            } else {
                Err(anyhow::anyhow!("creating the pod's namespaces failed"))
            };
            drop(done_w);
            let _ = waitpid(child, None);
            if result.is_err() {
                release(files);
            }
            result
        }
    }
}

fn pin(files: &NamespaceFiles, pid: i32) -> anyhow::Result<()> {
    for (name, path) in files.each() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let source = format!("/proc/{pid}/ns/{name}");
        mount(
            Some(source.as_str()),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("pinning the {name} namespace at {}", path.display()))?;
    }
    Ok(())
}

/// Unpins and removes the namespace files; idempotent.
pub fn release(files: &NamespaceFiles) {
    for (_, path) in files.each() {
        let _ = umount2(path, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(path);
    }
}

/// Brings `lo` up in the current (new) network namespace.
fn loopback_up() -> anyhow::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed, correctly sized ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            bail!("SIOCGIFFLAGS: {}", std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            bail!("SIOCSIFFLAGS: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
