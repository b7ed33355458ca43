//! `kone runtime …`: look at and act on this node's pods and containers,
//! whether or not the agent runs (the crictl/ctr role).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};

use super::containers::{ContainerDesc, MountDesc, Runtime, SandboxDesc, SeccompDesc};
use super::logs;
use super::shim::protocol::{ContainerState, Status};
use crate::api::quantity::parse_quantity;
use crate::config::{RunArgs, RuntimeArgs, RuntimeCommand};

pub fn run(args: RuntimeArgs) -> ExitCode {
    let rt = match Runtime::open(&args.data_dir, &args.run_dir) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kone runtime: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match dispatch(&rt, args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kone runtime: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(rt: &Runtime, cmd: RuntimeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RuntimeCommand::Run(a) => run_container(rt, *a),
        RuntimeCommand::Ps { all, quiet } => ps(rt, all, quiet),
        RuntimeCommand::Pods => pods(rt),
        RuntimeCommand::Inspect { id } => {
            let (_, state) = rt.find(&id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Logs { id, follow } => {
            let (shim, state) = rt.find(&id)?;
            let watch = follow.then(|| shim.watch_exit(&state.id)).transpose()?;
            print_logs(&state.log_path, follow, |d| {
                watch.as_ref().is_none_or(|w| w.answered_within(d))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Exec {
            tty,
            interactive,
            id,
            command,
        } => {
            let (shim, state) = rt.find(&id)?;
            let (pid, mut fds) = rt.exec(&shim, &state.id, &command, tty, interactive)?;
            let input = match (tty, interactive) {
                (true, true) => Some(fds[0].try_clone()?),
                (false, true) => Some(fds.remove(0)),
                (_, false) => None,
            };
            pump(input, fds, tty)?;
            let code = shim.exec_wait(pid)?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        RuntimeCommand::Stop { timeout, ids } => {
            for id in ids {
                let (shim, state) = rt.find(&id)?;
                shim.stop(&state.id, timeout, None)?;
                println!("{}", state.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Rm { force, ids } => {
            for id in ids {
                let (shim, state) = rt.find(&id)?;
                if state.status != Status::Exited {
                    if !force {
                        bail!(
                            "container {} is {:?}: stop it first or use -f",
                            state.id,
                            state.status
                        );
                    }
                    shim.stop(&state.id, 0, Some(libc::SIGKILL))?;
                }
                shim.delete(&state.id)?;
                println!("{}", state.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Rmp { ids } => {
            for id in ids {
                rt.sandbox(&id)?.shutdown()?;
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_container(rt: &Runtime, a: RunArgs) -> anyhow::Result<ExitCode> {
    let image = crate::runtime::images::store::resolve_name(&a.image)?;
    let name = a.name.clone().unwrap_or_else(|| {
        let base = image.rsplit('/').next().unwrap_or("container");
        base.split([':', '@'])
            .next()
            .unwrap_or("container")
            .to_string()
    });
    let new_pod = a.pod.is_none();
    let pod_id = a
        .pod
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let shim = if new_pod {
        rt.run_sandbox(&SandboxDesc {
            id: pod_id.clone(),
            name: name.clone(),
            namespace: "default".into(),
            uid: pod_id.clone(),
            hostname: a.hostname.clone().unwrap_or_else(|| name.clone()),
            host_network: a.host_network,
            cgroup_parent: format!("/kone/runtime/pod{pod_id}"),
            ..Default::default()
        })?
    } else {
        rt.sandbox(&pod_id)?
    };
    let result = (|| -> anyhow::Result<ExitCode> {
        let desc = describe(&a, &name, &image, &pod_id)?;
        let state = rt.create(&shim, &desc)?;
        shim.start(&state.id)?;
        if a.detach {
            println!("{}", state.id);
            return Ok(ExitCode::SUCCESS);
        }
        if a.interactive {
            let (attached, mut fds) = rt.attach(&shim, &state.id)?;
            if attached.input {
                pump(Some(fds.remove(0)), vec![], a.tty)?;
            }
        }
        // The log has all of the output, from the first byte, split by stream.
        let watch = shim.watch_exit(&state.id)?;
        print_logs(&desc.log_path, true, |d| watch.answered_within(d))?;
        let done = watch.state()?;
        if a.rm {
            shim.delete(&state.id)?;
        }
        Ok(ExitCode::from(
            done.exit_code.unwrap_or(1).clamp(0, 255) as u8
        ))
    })();
    if new_pod && (a.rm || result.is_err()) {
        let _ = shim.shutdown();
    }
    result
}

fn describe(a: &RunArgs, name: &str, image: &str, pod: &str) -> anyhow::Result<ContainerDesc> {
    let mut c = ContainerDesc {
        name: name.to_string(),
        image: image.to_string(),
        command: a.command.clone(),
        tty: a.tty,
        stdin: a.interactive,
        // The supervisor opens these paths from its own working directory.
        log_path: std::path::absolute(&a.log_dir)?
            .join(format!("default_{name}_{pod}"))
            .join(name)
            .join("0.log"),
        ..Default::default()
    };
    for e in &a.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| anyhow!("--env wants NAME=VALUE, got {e:?}"))?;
        c.env.push((k.into(), v.into()));
    }
    if let Some(m) = &a.memory {
        let q = parse_quantity(m).map_err(|e| anyhow!("--memory {m:?}: {e}"))?;
        c.resources.memory_limit = Some(q.value() as i64);
    }
    if let Some(cpus) = &a.cpus {
        let q = parse_quantity(cpus).map_err(|e| anyhow!("--cpus {cpus:?}: {e}"))?;
        let milli = (q.nanos() / 1_000_000) as i64;
        c.resources.cpu_quota = Some(milli * 100);
        c.resources.cpu_period = Some(100_000);
    }
    c.resources.pids_limit = a.pids_limit;
    c.security.read_only_rootfs = a.read_only;
    c.security.privileged = a.privileged;
    c.security.cap_add = a.cap_add.clone();
    c.security.cap_drop = a.cap_drop.clone();
    c.security.seccomp = match a.seccomp.as_str() {
        "runtime-default" | "RuntimeDefault" => SeccompDesc::RuntimeDefault,
        "unconfined" | "Unconfined" => SeccompDesc::Unconfined,
        other => bail!("--seccomp must be runtime-default or unconfined, got {other:?}"),
    };
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        c.security.run_as_user = Some(uid.parse().context("--user wants UID[:GID]")?);
        c.security.run_as_group = gid
            .map(|g| g.parse())
            .transpose()
            .context("--user wants UID[:GID]")?;
    }
    for v in &a.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [s, d] => (s, d, false),
            [s, d, "ro"] => (s, d, true),
            _ => bail!("--volume wants HOST:CONTAINER[:ro], got {v:?}"),
        };
        c.mounts.push(MountDesc {
            source: std::path::absolute(src)?,
            destination: dst.to_string(),
            read_only: ro,
            tmpfs_size: None,
        });
    }
    Ok(c)
}

fn ps(rt: &Runtime, all: bool, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<(String, ContainerState)> = Vec::new();
    for sid in rt.sandbox_ids() {
        let states = match rt.sandbox(&sid) {
            Ok(shim) => shim.list()?,
            Err(_) => continue,
        };
        rows.extend(states.into_iter().map(|c| (sid.clone(), c)));
    }
    rows.retain(|(_, c)| all || c.status != Status::Exited);
    if quiet {
        for (_, c) in rows {
            println!("{}", c.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<36} {:<12} {:<18} {:<7} {:<14}",
        "CONTAINER", "IMAGE", "STATE", "NAME", "ATTEMPT", "POD ID"
    );
    for (sid, c) in rows {
        let state = match (&c.status, c.exit_code) {
            (Status::Exited, Some(code)) => format!("exited({code})"),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        println!(
            "{:<14} {:<36} {:<12} {:<18} {:<7} {:<14}",
            &c.id[..c.id.len().min(13)],
            c.image,
            state,
            c.name,
            c.attempt,
            &sid[..sid.len().min(13)]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn pods(rt: &Runtime) -> anyhow::Result<ExitCode> {
    println!(
        "{:<34} {:<24} {:<12} {:<8} {:<10}",
        "POD ID", "NAME", "NAMESPACE", "PID", "CONTAINERS"
    );
    for sid in rt.sandbox_ids() {
        match rt.sandbox(&sid).and_then(|s| Ok((s.info()?, s.list()?))) {
            Ok((info, list)) => println!(
                "{:<34} {:<24} {:<12} {:<8} {:<10}",
                sid,
                info.sandbox.name,
                info.sandbox.namespace,
                info.pid,
                list.len()
            ),
            Err(_) => println!(
                "{sid:<34} {:<24} {:<12} {:<8} {:<10}",
                "?", "?", "gone", "?"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_logs(
    path: &std::path::Path,
    follow: bool,
    finished: impl FnMut(std::time::Duration) -> bool,
) -> anyhow::Result<()> {
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    logs::read(
        path,
        follow,
        |r| {
            let out: &mut dyn Write = if r.stream == "stderr" {
                &mut stderr
            } else {
                &mut stdout
            };
            out.write_all(r.content)?;
            if !r.partial {
                out.write_all(b"\n")?;
            }
            out.flush()
        },
        finished,
    )
    .with_context(|| format!("reading {}", path.display()))
}

/// Copies our stdin into `input` in the background, and `outputs` (stdout,
/// then stderr unless a terminal) to ours until they end.
fn pump(input: Option<OwnedFd>, outputs: Vec<OwnedFd>, tty: bool) -> anyhow::Result<()> {
    if let Some(writer) = input {
        let mut w = File::from(writer);
        std::thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut w);
        });
    }
    let mut threads = Vec::new();
    for (i, fd) in outputs.into_iter().enumerate() {
        threads.push(std::thread::spawn(move || {
            let mut r = File::from(fd);
            let mut buf = [0u8; 8192];
            loop {
                // A terminal's master reports EIO once the process is gone.
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let res = if i == 1 && !tty {
                    io::stderr()
                        .write_all(&buf[..n])
                        .and_then(|_| io::stderr().flush())
                } else {
                    io::stdout()
                        .write_all(&buf[..n])
                        .and_then(|_| io::stdout().flush())
                };
                if res.is_err() {
                    return;
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
