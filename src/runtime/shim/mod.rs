//! `kone shim`: the per-pod supervisor process, and the client the agent and
//! `kone runtime` use to talk to it.

pub mod cgroups;
pub mod client;
pub mod crilog;
mod idle;
pub mod namespaces;
pub mod protocol;
pub mod rootfs;
pub mod supervisor;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use nix::unistd::{dup2, fork, setsid, ForkResult};

use crate::runtime::containers::SandboxDesc;
use supervisor::Supervisor;

/// Entry of `kone shim --dir DIR`. Sets the sandbox up, then daemonizes:
/// the first process prints `ready <pid>` and exits once the supervisor is
/// serving, so the spawner knows whether it worked and never has to reap it.
pub fn run(dir: &Path) -> ExitCode {
    match prepare(dir) {
        Ok(sup) => daemonize(dir, sup),
        Err(e) => {
            eprintln!("kone shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn prepare(dir: &Path) -> anyhow::Result<Supervisor> {
    let raw = fs::read(dir.join("sandbox.json"))?;
    let sandbox: SandboxDesc = serde_json::from_slice(&raw)?;
    Supervisor::install_signal_handlers()?;
    Supervisor::prepare(dir, sandbox)
}

fn daemonize(dir: &Path, sup: Supervisor) -> ExitCode {
    // SAFETY: `kone shim` never starts a second thread.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("kone shim: fork: {e}");
            ExitCode::FAILURE
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = fs::write(dir.join("shim.pid"), child.to_string());
            println!("ready {child}");
            ExitCode::SUCCESS
        }
        Ok(ForkResult::Child) => {
            let _ = setsid();
            // SAFETY: plain prctl; makes orphaned container processes ours to reap.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            if let Err(e) = detach_stdio(dir) {
                eprintln!("kone shim: {e}");
                return ExitCode::FAILURE;
            }
            match sup.run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "supervisor failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// stdin and stdout from /dev/null, stderr (where tracing writes) to shim.log.
fn detach_stdio(dir: &Path) -> std::io::Result<()> {
    let null = File::open("/dev/null")?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))?;
    dup2(null.as_raw_fd(), 0)?;
    dup2(null.as_raw_fd(), 1)?;
    dup2(log.as_raw_fd(), 2)?;
    std::io::stdout().flush()
}
