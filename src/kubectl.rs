//! `kone kubectl`: the kubectl on PATH, pointed at this machine's cluster.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_KUBECONFIG: &str = "/etc/kone/kone.yaml";

pub fn run(args: Vec<OsString>) -> ExitCode {
    let kubeconfig = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG));
    if !kubeconfig.exists() {
        eprintln!(
            "kone kubectl: no kubeconfig at {}: start `kone server` first (or set KUBECONFIG)",
            kubeconfig.display()
        );
        return ExitCode::FAILURE;
    }
    let err = std::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .exec();
    eprintln!("kone kubectl: cannot run kubectl from PATH: {err}");
    ExitCode::from(127)
}
