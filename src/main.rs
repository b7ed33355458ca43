use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use kone::config::{self, Command};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // One supervisor starts per pod, on the pod's critical path: the form
    // the spawner uses skips building and parsing the whole CLI and the TLS
    // setup, which a supervisor never needs.
    if let [_, cmd, flag, dir] = argv.as_slice() {
        if cmd == "shim" && flag == "--dir" {
            init_logging(false);
            return kone::runtime::shim::run(Path::new(dir));
        }
    }
    let cli = match config::parse(argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kone: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.debug);
    kone::identity::install_crypto_provider();
    match cli.command {
        Command::Kubectl { args } => kone::kubectl::run(args),
        Command::Images(args) => kone::runtime::images::cli::run(args),
        Command::Runtime(args) => kone::runtime::cli::run(args),
        Command::Shim { dir } => kone::runtime::shim::run(&dir),
        Command::Server(args) => run_async("server", kone::server::run(*args)),
        Command::Agent(args) => run_async("agent", kone::agent::run(*args)),
    }
}

fn run_async(mode: &str, main: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    kone::malloc::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kone: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.spawn(kone::malloc::scavenge());
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kone {mode}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "kone=debug,info" } else { "info" };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("KONE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // rustls-platform-verifier logs each certificate it rejects at ERROR;
    // the same failure comes back to kone as an error and is reported once.
    // kube's client logs a refused connection at ERROR too, which reads as
    // fatal while an agent is only waiting for its server to come back.
    for quiet in [
        "rustls_platform_verifier=off",
        "kube_client::client::builder=off",
    ] {
        if let Ok(quiet) = quiet.parse() {
            filter = filter.add_directive(quiet);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
