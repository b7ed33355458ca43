//! The per-pod supervisor's event loop. Single-threaded on purpose:
//! libcontainer forks with a raw clone3, which is only safe in a process
//! with one thread. It is the subreaper of its containers, owns their stdio
//! (writing CRI logs), records exits and OOM kills, and answers requests on
//! its socket. It outlives the agent; a new agent simply connects again.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use serde_json::{json, Value};

use super::cgroups;
use super::crilog::{CriLog, LineSplitter};
use super::idle::Idle;
use super::namespaces::{self, NamespaceFiles};
use super::protocol::{
    self, Attached, ContainerState, CreateRequest, ExecStarted, Reply, Request, RootfsDesc,
    ShimInfo, Status,
};
use super::rootfs;
use crate::runtime::containers::SandboxDesc;

const LOG_MAX_SIZE: u64 = 10 << 20;
const LOG_MAX_FILES: usize = 5;
/// How long output may keep flowing after a container's init exited
/// (a leftover process holding the pipe) before the exit is reported.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; a full pipe just drops the byte.
    unsafe { libc::write(fd, b"c".as_ptr().cast(), 1) };
}

extern "C" fn on_sigpipe(_: libc::c_int) {}

struct Output {
    fd: OwnedFd,
    stream: &'static str,
    lines: LineSplitter,
}

struct Ctr {
    state: ContainerState,
    bundle: PathBuf,
    rootfs: RootfsDesc,
    cgroup: String,
    log: Option<CriLog>,
    outputs: Vec<Output>,
    /// The stdin writer, or the terminal master.
    input: Option<OwnedFd>,
    /// Copies of the output for attached clients: (stream, writer).
    attachers: Vec<(&'static str, OwnedFd)>,
    waiters: Vec<UnixStream>,
    kill_at: Option<Instant>,
    /// Exit status seen, output still draining until the deadline.
    reaped: Option<(i32, Instant)>,
}

#[derive(Default)]
struct ExecProc {
    exit: Option<i32>,
    waiters: Vec<UnixStream>,
}

pub struct Supervisor {
    dir: PathBuf,
    lc_root: PathBuf,
    sandbox: SandboxDesc,
    ns: NamespaceFiles,
    listener: UnixListener,
    wake: OwnedFd,
    containers: BTreeMap<String, Ctr>,
    execs: HashMap<i32, ExecProc>,
    shutdown: Option<UnixStream>,
    consoles: u64,
    idle: Idle,
}

impl Supervisor {
    /// Sets up the sandbox: namespaces pinned, socket bound. Runs before the
    /// process daemonizes so that errors reach the caller.
    pub fn prepare(dir: &Path, sandbox: SandboxDesc) -> anyhow::Result<Supervisor> {
        std::env::set_current_dir(dir)?;
        let ns = NamespaceFiles::in_dir(dir, &sandbox);
        namespaces::create(&ns, &sandbox.hostname)?;
        let sock = dir.join("shim.sock");
        let _ = fs::remove_file(&sock);
        let listener =
            UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
        listener.set_nonblocking(true)?;
        let (wake_r, wake_w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // The write end lives for the life of the process (signal handler).
        WAKE_FD.store(wake_w.as_raw_fd(), Ordering::Relaxed);
        std::mem::forget(wake_w);
        Ok(Supervisor {
            dir: dir.to_path_buf(),
            lc_root: dir.join("lc"),
            sandbox,
            ns,
            listener,
            wake: wake_r,
            containers: BTreeMap::new(),
            execs: HashMap::new(),
            shutdown: None,
            consoles: 0,
            idle: Idle::new(),
        })
    }

    /// Handlers, not SIG_IGN: handlers reset to default across exec, so
    /// containers do not inherit them.
    pub fn install_signal_handlers() -> io::Result<()> {
        for (sig, handler) in [
            (libc::SIGCHLD, on_sigchld as extern "C" fn(libc::c_int)),
            (libc::SIGPIPE, on_sigpipe),
        ] {
            // SAFETY: installing async-signal-safe handlers with a zeroed
            // sigaction whose mask is emptied.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as usize;
                sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        tracing::info!(sandbox = %self.sandbox.id, "supervisor running");
        loop {
            self.reap();
            self.fire_timers();
            self.finalize_exits();
            if self.shutdown.is_some()
                && self
                    .containers
                    .values()
                    .all(|c| c.reaped.is_none() && c.state.status != Status::Running)
            {
                return self.finish_shutdown();
            }
            self.poll_once()?;
        }
    }

    fn poll_once(&mut self) -> anyhow::Result<()> {
        let mut fds = vec![
            pollfd(self.listener.as_raw_fd()),
            pollfd(self.wake.as_raw_fd()),
        ];
        let mut owners = Vec::new();
        for (id, c) in &self.containers {
            for (i, o) in c.outputs.iter().enumerate() {
                fds.push(pollfd(o.fd.as_raw_fd()));
                owners.push((id.clone(), i));
            }
        }
        // Last thing before sleeping, so that little code runs between
        // letting the pages go and the wait.
        self.idle.tick();
        let deadline = [self.next_deadline(), self.idle.deadline()]
            .into_iter()
            .flatten()
            .min();
        let timeout = deadline.map_or(-1, |d| {
            d.saturating_duration_since(Instant::now())
                .as_millis()
                .min(60_000) as i32
                + 1
        });
        // SAFETY: fds is a valid, correctly sized array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e.into());
        }
        if n > 0 {
            self.idle.busy();
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: draining our non-blocking wake pipe into a stack buffer.
            while unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
                > 0
            {}
        }
        // Output before requests, so that a waiter sees all of it logged.
        let mut ended = Vec::new();
        for (pfd, (id, i)) in fds[2..].iter().zip(owners) {
            if pfd.revents != 0 && !self.pump_output(&id, i) {
                ended.push((id, i));
            }
        }
        for (id, i) in ended.into_iter().rev() {
            if let Some(c) = self.containers.get_mut(&id) {
                let mut out = c.outputs.remove(i);
                let stream = out.stream;
                let log = &mut c.log;
                out.lines
                    .finish(|line, partial| write_log(log, stream, partial, line));
            }
        }
        if fds[0].revents != 0 {
            loop {
                match self.listener.accept() {
                    Ok((conn, _)) => self.serve(conn),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads what is available; false at end of stream.
    fn pump_output(&mut self, id: &str, i: usize) -> bool {
        let Some(c) = self.containers.get_mut(id) else {
            return false;
        };
        let mut buf = [0u8; 65536];
        // SAFETY: reading into a stack buffer of the given size.
        let n = unsafe {
            libc::read(
                c.outputs[i].fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n <= 0 {
            let e = io::Error::last_os_error();
            return n < 0 && e.kind() == io::ErrorKind::WouldBlock;
        }
        let data = &buf[..n as usize];
        let stream = c.outputs[i].stream;
        let log = &mut c.log;
        c.outputs[i]
            .lines
            .feed(data, |line, partial| write_log(log, stream, partial, line));
        // Attached clients get a copy; a slow one loses data rather than
        // stalling the container, a gone one is dropped.
        c.attachers.retain(|(s, fd)| {
            if *s != stream {
                return true;
            }
            // SAFETY: writing from a valid slice to a descriptor we own.
            let w = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            w >= 0 || io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
        });
        true
    }

    fn serve(&mut self, conn: UnixStream) {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let read = match conn.try_clone() {
            Ok(c) => BufReader::new(c).read_line(&mut line),
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            tracing::warn!(error = %e, "reading a request");
            return;
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                reply(&conn, Err(anyhow!("bad request: {e}")), &[]);
                return;
            }
        };
        tracing::debug!(?req, "request");
        self.handle(req, conn);
    }

    fn handle(&mut self, req: Request, conn: UnixStream) {
        match req {
            Request::Info => {
                let info = ShimInfo {
                    pid: std::process::id() as i32,
                    sandbox: self.sandbox.clone(),
                    netns: self.ns.net.clone(),
                };
                reply(&conn, to_value(&info), &[]);
            }
            Request::Create(c) => {
                let r = self.create(*c);
                reply(&conn, r, &[]);
            }
            Request::Start { id } => {
                let r = self.start(&id);
                reply(&conn, r, &[]);
            }
            Request::Kill { id, signal } => {
                let r = self.signal(&id, signal).map(|_| Value::Null);
                reply(&conn, r, &[]);
            }
            Request::Stop {
                id,
                timeout_secs,
                signal,
            } => match self.signal(&id, signal.unwrap_or(libc::SIGTERM)) {
                Ok(true) => {
                    if let Some(c) = self.containers.get_mut(&id) {
                        let at = Instant::now() + Duration::from_secs(timeout_secs);
                        c.kill_at = Some(c.kill_at.map_or(at, |k| k.min(at)));
                        c.waiters.push(conn);
                    }
                }
                Ok(false) => {
                    let r = self.state(&id);
                    reply(&conn, r, &[]);
                }
                Err(e) => reply(&conn, Err(e), &[]),
            },
            Request::Wait { id } => match self.containers.get_mut(&id) {
                Some(c) if c.state.status != Status::Exited => c.waiters.push(conn),
                _ => {
                    let r = self.state(&id);
                    reply(&conn, r, &[]);
                }
            },
            Request::Delete { id } => {
                let r = self.delete(&id);
                reply(&conn, r, &[]);
            }
            Request::List => {
                let all: Vec<&ContainerState> =
                    self.containers.values().map(|c| &c.state).collect();
                reply(&conn, to_value(&all), &[]);
            }
            Request::Exec { id, process, stdin } => match self.exec(&id, process, stdin) {
                Ok((pid, fds)) => {
                    self.execs.entry(pid).or_default();
                    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
                    reply(&conn, to_value(&ExecStarted { pid }), &raw);
                }
                Err(e) => reply(&conn, Err(e), &[]),
            },
            Request::ExecWait { pid } => match self.execs.get_mut(&pid) {
                Some(e) if e.exit.is_none() => e.waiters.push(conn),
                Some(e) => {
                    let code = e.exit;
                    self.execs.remove(&pid);
                    reply(&conn, Ok(json!(code)), &[]);
                }
                None => reply(&conn, Err(anyhow!("no exec process {pid}")), &[]),
            },
            Request::Attach { id } => match self.attach(&id) {
                Ok((a, fds)) => {
                    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
                    reply(&conn, to_value(&a), &raw);
                }
                Err(e) => reply(&conn, Err(e), &[]),
            },
            Request::Shutdown => {
                let running: Vec<String> = self
                    .containers
                    .iter()
                    .filter(|(_, c)| c.state.status != Status::Exited)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in running {
                    let _ = self.signal(&id, libc::SIGKILL);
                }
                self.shutdown = Some(conn);
            }
        }
    }

    fn state(&self, id: &str) -> anyhow::Result<Value> {
        let c = self.get(id)?;
        to_value(&c.state)
    }

    fn get(&self, id: &str) -> anyhow::Result<&Ctr> {
        self.containers
            .get(id)
            .ok_or_else(|| anyhow!("container {id} not found"))
    }

    fn create(&mut self, req: CreateRequest) -> anyhow::Result<Value> {
        if let Some(c) = self.containers.get(&req.id) {
            return to_value(&c.state);
        }
        if self.shutdown.is_some() {
            bail!("the sandbox is shutting down");
        }
        rootfs::mount_overlay(&req.rootfs)?;
        match self.build(&req) {
            Ok(ctr) => {
                let v = to_value(&ctr.state);
                self.persist(&ctr.state);
                self.containers.insert(req.id.clone(), ctr);
                v
            }
            Err(e) => {
                let _ = rootfs::unmount(&req.rootfs);
                let _ = fs::remove_dir_all(self.lc_root.join(&req.id));
                Err(e)
            }
        }
    }

    fn build(&mut self, req: &CreateRequest) -> anyhow::Result<Ctr> {
        let log = CriLog::open(&req.log_path, LOG_MAX_SIZE, LOG_MAX_FILES)
            .with_context(|| format!("opening the log file {}", req.log_path.display()))?;
        let mut builder = ContainerBuilder::new(req.id.clone(), SyscallType::default())
            .with_executor(DefaultExecutor {})
            .with_root_path(&self.lc_root)?
            .validate_id()?;
        let mut outputs = Vec::new();
        let mut input = None;
        let console = if req.tty {
            let (l, path) = self.console_listener()?;
            builder = builder.with_console_socket(Some(&path));
            Some((l, path))
        } else {
            let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
            let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
            builder = builder.with_stdout(out_w).with_stderr(err_w);
            outputs.push(output(out_r, "stdout")?);
            outputs.push(output(err_r, "stderr")?);
            if req.stdin {
                let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC)?;
                builder = builder.with_stdin(in_r);
                input = Some(in_w);
            }
            None
        };
        let built = builder
            .as_init(&req.bundle)
            .with_systemd(false)
            .with_detach(true)
            .build();
        let master = match &console {
            Some((l, path)) => {
                let m = built.as_ref().ok().map(|_| receive_master(l));
                let _ = fs::remove_file(path);
                m.transpose()?
            }
            None => None,
        };
        let container = built.map_err(|e| anyhow!("creating the container: {e}"))?;
        // libcontainer wrote the container's oomScoreAdj into this process;
        // the supervisor itself should be the last thing the OOM killer takes.
        let _ = fs::write("/proc/self/oom_score_adj", "-998");
        if let Some(m) = master {
            outputs.push(output(m.try_clone()?, "stdout")?);
            input = Some(m);
        }
        Ok(Ctr {
            state: ContainerState {
                id: req.id.clone(),
                name: req.name.clone(),
                image: req.image.clone(),
                attempt: req.attempt,
                status: Status::Created,
                pid: container.pid().map(|p| p.as_raw()),
                created_at: now(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                reason: None,
                log_path: req.log_path.clone(),
                tty: req.tty,
                stdin: req.stdin,
                labels: req.labels.clone(),
            },
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            cgroup: req.cgroup.clone(),
            log: Some(log),
            outputs,
            input,
            attachers: Vec::new(),
            waiters: Vec::new(),
            kill_at: None,
            reaped: None,
        })
    }

    /// A socket for libcontainer to send a terminal over. Bound by a short
    /// relative name (the supervisor's cwd is its folder): socket paths are
    /// limited to 108 bytes and run dirs can be long.
    fn console_listener(&mut self) -> anyhow::Result<(UnixListener, PathBuf)> {
        self.consoles += 1;
        let name = format!("console-{}.sock", self.consoles);
        let _ = fs::remove_file(&name);
        let listener = UnixListener::bind(&name).context("binding a console socket")?;
        Ok((listener, self.dir.join(name)))
    }

    fn load(&self, id: &str) -> anyhow::Result<Container> {
        Container::load(self.lc_root.join(id)).map_err(|e| anyhow!("loading container {id}: {e}"))
    }

    fn start(&mut self, id: &str) -> anyhow::Result<Value> {
        let c = self.get(id)?;
        match c.state.status {
            Status::Running => return to_value(&c.state),
            Status::Exited => bail!("container {id} has exited and cannot start again"),
            Status::Created => {}
        }
        self.load(id)?
            .start()
            .map_err(|e| anyhow!("starting container {id}: {e}"))?;
        let c = self
            .containers
            .get_mut(id)
            .ok_or_else(|| anyhow!("container {id} not found"))?;
        if c.reaped.is_none() {
            c.state.status = Status::Running;
        }
        c.state.started_at = Some(now());
        let state = c.state.clone();
        self.persist(&state);
        to_value(&state)
    }

    /// Sends a signal to the container's init; false if it is not running.
    fn signal(&mut self, id: &str, signal: i32) -> anyhow::Result<bool> {
        let c = self.get(id)?;
        if c.state.status == Status::Exited || c.reaped.is_some() {
            return Ok(false);
        }
        let Some(pid) = c.state.pid else {
            return Ok(false);
        };
        // SAFETY: kill(2) on the init pid this supervisor started and has
        // not reaped, so the pid cannot have been reused.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                bail!("signalling container {id}: {e}");
            }
        }
        Ok(true)
    }

    fn delete(&mut self, id: &str) -> anyhow::Result<Value> {
        let Some(c) = self.containers.get(id) else {
            return Ok(Value::Null);
        };
        if c.state.status != Status::Exited {
            bail!("container {id} is {:?}; stop it first", c.state.status);
        }
        if let Ok(mut lc) = self.load(id) {
            lc.delete(true)
                .map_err(|e| anyhow!("deleting container {id}: {e}"))?;
        }
        let c = self
            .containers
            .remove(id)
            .ok_or_else(|| anyhow!("container {id} not found"))?;
        rootfs::unmount(&c.rootfs)?;
        let _ = fs::remove_dir_all(&c.bundle);
        let _ = fs::remove_file(self.record_path(id));
        Ok(Value::Null)
    }

    fn exec(
        &mut self,
        id: &str,
        process: Value,
        stdin: bool,
    ) -> anyhow::Result<(i32, Vec<OwnedFd>)> {
        let c = self.get(id)?;
        if c.state.status != Status::Running || c.reaped.is_some() {
            bail!("container {id} is not running");
        }
        let tty = process["terminal"].as_bool().unwrap_or(false);
        let proc_path = self
            .dir
            .join(format!("exec-{}.json", uuid::Uuid::new_v4().simple()));
        fs::write(&proc_path, serde_json::to_vec(&process)?)?;
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_executor(DefaultExecutor {})
            .with_root_path(&self.lc_root)?;
        let mut ours = Vec::new();
        let console = if tty {
            let (l, path) = self.console_listener()?;
            builder = builder.with_console_socket(Some(&path));
            Some((l, path))
        } else {
            let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC)?;
            let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
            let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
            builder = builder.with_stdout(out_w).with_stderr(err_w);
            if stdin {
                builder = builder.with_stdin(in_r);
                ours.push(in_w);
            } else {
                builder = builder.with_stdin(File::open("/dev/null")?);
            }
            ours.push(out_r);
            ours.push(err_r);
            None
        };
        let built = builder
            .as_tenant()
            .with_process(Some(&proc_path))
            .with_detach(true)
            .build();
        let _ = fs::remove_file(&proc_path);
        if let Some((l, path)) = &console {
            let m = built.as_ref().ok().map(|_| receive_master(l));
            let _ = fs::remove_file(path);
            if let Some(m) = m {
                ours.push(m?);
            }
        }
        let pid = built.map_err(|e| anyhow!("exec in container {id}: {e}"))?;
        Ok((pid.as_raw(), ours))
    }

    fn attach(&mut self, id: &str) -> anyhow::Result<(Attached, Vec<OwnedFd>)> {
        let c = self
            .containers
            .get_mut(id)
            .ok_or_else(|| anyhow!("container {id} not found"))?;
        if c.state.status == Status::Exited {
            bail!("container {id} has exited");
        }
        let mut fds = Vec::new();
        let input = match &c.input {
            Some(i) if c.state.stdin || c.state.tty => {
                fds.push(i.try_clone()?);
                true
            }
            _ => false,
        };
        let streams: &[&'static str] = if c.state.tty {
            &["stdout"]
        } else {
            &["stdout", "stderr"]
        };
        for s in streams {
            let (r, w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
            c.attachers.push((s, w));
            // The reader is handed over blocking: the client reads at leisure.
            nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
            fds.push(r);
        }
        Ok((
            Attached {
                input,
                tty: c.state.tty,
            },
            fds,
        ))
    }

    /// Collects exited children: container inits, exec processes, and
    /// orphans reparented to this subreaper.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
            if let Some(c) = self
                .containers
                .values_mut()
                .find(|c| c.state.pid == Some(pid) && c.state.status != Status::Exited)
            {
                tracing::info!(id = %c.state.id, pid, code, "container exited");
                c.reaped = Some((code, Instant::now() + DRAIN_LIMIT));
                c.kill_at = None;
            } else if let Some(e) = self.execs.get_mut(&pid) {
                // Kept until a waiter has the code: one waiting now, or ExecWait later.
                e.exit = Some(code);
                let waiters = std::mem::take(&mut e.waiters);
                if !waiters.is_empty() {
                    self.execs.remove(&pid);
                }
                for w in waiters {
                    reply(&w, Ok(json!(code)), &[]);
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| c.kill_at.is_some_and(|k| k <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            tracing::info!(%id, "grace period over, killing");
            let _ = self.signal(&id, libc::SIGKILL);
            if let Some(c) = self.containers.get_mut(&id) {
                c.kill_at = None;
            }
        }
    }

    /// Reports an exit once its output is fully logged (or the drain limit passed).
    fn finalize_exits(&mut self) {
        let instant = Instant::now();
        let mut done = Vec::new();
        for c in self.containers.values_mut() {
            let Some((code, deadline)) = c.reaped else {
                continue;
            };
            if !c.outputs.is_empty() && instant < deadline {
                continue;
            }
            for mut out in c.outputs.drain(..) {
                let stream = out.stream;
                let log = &mut c.log;
                out.lines
                    .finish(|line, partial| write_log(log, stream, partial, line));
            }
            let oom = cgroups::oom_killed(&c.cgroup);
            c.state.status = Status::Exited;
            c.state.exit_code = Some(code);
            c.state.finished_at = Some(now());
            c.state.reason = Some(
                if oom {
                    "OOMKilled"
                } else if code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .into(),
            );
            c.reaped = None;
            c.input = None;
            c.attachers.clear();
            c.log = None;
            let state = to_value(&c.state);
            for w in c.waiters.drain(..) {
                reply(
                    &w,
                    state.as_ref().map(Clone::clone).map_err(|e| anyhow!("{e}")),
                    &[],
                );
            }
            done.push(c.state.clone());
        }
        for state in done {
            self.persist(&state);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|c| [c.kill_at, c.reaped.map(|r| r.1)])
            .flatten()
            .min()
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join("containers").join(format!("{id}.json"))
    }

    /// The last known state on disk, for `kone runtime` when this process is gone.
    fn persist(&self, state: &ContainerState) {
        let path = self.record_path(&state.id);
        let write = || -> io::Result<()> {
            fs::create_dir_all(self.dir.join("containers"))?;
            crate::runtime::images::store::write_atomic(&path, &serde_json::to_vec(state)?)
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, path = %path.display(), "recording container state");
        }
    }

    fn finish_shutdown(mut self) -> anyhow::Result<()> {
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        let mut errors = Vec::new();
        for id in ids {
            if let Err(e) = self.delete(&id) {
                errors.push(e.to_string());
            }
        }
        namespaces::release(&self.ns);
        cgroups::remove(&self.sandbox.cgroup_parent);
        let conn = self.shutdown.take();
        let result = if errors.is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
            Ok(Value::Null)
        } else {
            Err(anyhow!("{}", errors.join("; ")))
        };
        tracing::info!(sandbox = %self.sandbox.id, "supervisor exiting");
        if let Some(conn) = conn {
            reply(&conn, result, &[]);
        }
        Ok(())
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn output(fd: OwnedFd, stream: &'static str) -> anyhow::Result<Output> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    )?;
    Ok(Output {
        fd,
        stream,
        lines: LineSplitter::default(),
    })
}

fn write_log(log: &mut Option<CriLog>, stream: &str, partial: bool, line: &[u8]) {
    if let Some(l) = log {
        if let Err(e) = l.write(stream, partial, line) {
            tracing::warn!(error = %e, "writing the container log");
        }
    }
}

/// The terminal master that libcontainer sends over the console socket.
fn receive_master(listener: &UnixListener) -> anyhow::Result<OwnedFd> {
    listener.set_nonblocking(false)?;
    let (conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    bail!("no terminal received on the console socket")
}

fn to_value<T: serde::Serialize>(v: &T) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(v)?)
}

fn reply(conn: &UnixStream, result: anyhow::Result<Value>, fds: &[RawFd]) {
    let r = match result {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Error(format!("{e:#}")),
    };
    let mut line = serde_json::to_vec(&r).unwrap_or_else(|_| b"{\"error\":\"encoding\"}".to_vec());
    line.push(b'\n');
    if let Err(e) = protocol::send_line(conn, &line, fds) {
        tracing::debug!(error = %e, "client gone before the reply");
    }
    let _ = (&*conn).flush();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
