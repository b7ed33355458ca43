//! The kubelet's streaming endpoints, which the API server proxies
//! pods/exec, pods/attach and pods/portforward to (upgrade and all):
//! `/exec/{ns}/{pod}/{container}`, `/attach/{ns}/{pod}/{container}` and
//! `/portForward/{ns}/{pod}`. The processes and their stdio come from the
//! pod's supervisor (descriptors over its socket); the bytes are pumped
//! between those and the client's WebSocket or SPDY streams here.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::StatusCode;
use hyper::upgrade::OnUpgrade;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use super::server::authorized;
use super::Kubelet;
use crate::apiserver::listener::PeerIdentity;
use crate::apiserver::status::ApiError;
use crate::runtime::shim::client::ShimClient;
use crate::runtime::shim::protocol::Status;
use crate::streaming::remotecommand::{self, Options, Output, Streams, TermSize};
use crate::streaming::spdy::Session;
use crate::streaming::upgrade::{self, Refused, Transport};
use crate::streaming::{portforward, tunnel};

/// After a command exits, how long its output may still take to drain
/// (a background child holding the pipe open must not hold the session).
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

type Query2 = Query<Vec<(String, String)>>;

pub async fn exec(
    State(k): State<Arc<Kubelet>>,
    Extension(peer): Extension<PeerIdentity>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query2,
    req: Request,
) -> Response {
    let command: Vec<String> = q
        .iter()
        .filter(|(n, _)| n == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return status(
            400,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    remote_command(k, peer, (ns, pod, container), q, req, Some(command)).await
}

pub async fn attach(
    State(k): State<Arc<Kubelet>>,
    Extension(peer): Extension<PeerIdentity>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query2,
    req: Request,
) -> Response {
    remote_command(k, peer, (ns, pod, container), q, req, None).await
}

pub async fn port_forward(
    State(k): State<Arc<Kubelet>>,
    Extension(peer): Extension<PeerIdentity>,
    Path((ns, pod)): Path<(String, String)>,
    mut req: Request,
) -> Response {
    if !authorized(&peer) {
        return status(403, "Forbidden", "Forbidden");
    }
    let uid = match pod_uid(&k, &ns, &pod).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let rt = k.runtime.clone();
    let id = uid.clone();
    let netns = tokio::task::spawn_blocking(move || Some(rt.sandbox(&id).ok()?.info().ok()?.netns))
        .await
        .ok()
        .flatten();
    let Some(netns) = netns else {
        return status(
            400,
            "BadRequest",
            format!("pod {ns}/{pod} has no running sandbox"),
        );
    };
    let (transport, headers) = match upgrade::negotiate(
        req.headers(),
        &[portforward::TUNNEL_PROTOCOL],
        &[portforward::PROTOCOL],
    ) {
        Ok(t) => t,
        Err(Refused(code, msg)) => return refused(code, msg),
    };
    let Some(on) = req.extensions_mut().remove::<OnUpgrade>() else {
        return status(400, "BadRequest", "Upgrade request required");
    };
    tokio::spawn(async move {
        let io = match upgrade::upgraded(on).await {
            Ok(io) => io,
            Err(e) => return tracing::debug!(error = %e, "port-forward upgrade failed"),
        };
        let session = match transport {
            Transport::WebSocket(_) => Session::start(tunnel::bytes(upgrade::websocket(io).await)),
            Transport::Spdy(_) => Session::start(io),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "port-forward session"),
        };
        tracing::debug!(%ns, %pod, "port-forward session started");
        portforward::serve(session, format!("{pod}, uid {uid}"), move |port| {
            connect_in(netns.clone(), port)
        })
        .await;
    });
    (StatusCode::SWITCHING_PROTOCOLS, headers).into_response()
}

async fn remote_command(
    k: Arc<Kubelet>,
    peer: PeerIdentity,
    (ns, pod, container): (String, String, String),
    q: Vec<(String, String)>,
    mut req: Request,
    command: Option<Vec<String>>,
) -> Response {
    if !authorized(&peer) {
        return status(403, "Forbidden", "Forbidden");
    }
    let opts = match Options::from_query(&q) {
        Ok(o) => o,
        Err(e) => return status(400, "BadRequest", e),
    };
    let uid = match pod_uid(&k, &ns, &pod).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (shim, id) = match running_container(&k, &uid, &container).await {
        Some(found) => found,
        None => {
            return status(
                400,
                "BadRequest",
                format!("container not found ({container:?})"),
            );
        }
    };
    let (transport, headers) = match upgrade::negotiate(
        req.headers(),
        remotecommand::WEBSOCKET_PROTOCOLS,
        remotecommand::SPDY_PROTOCOLS,
    ) {
        Ok(t) => t,
        Err(Refused(code, msg)) => return refused(code, msg),
    };
    let Some(on) = req.extensions_mut().remove::<OnUpgrade>() else {
        return status(400, "BadRequest", "Upgrade request required");
    };
    tokio::spawn(async move {
        let io = match upgrade::upgraded(on).await {
            Ok(io) => io,
            Err(e) => return tracing::debug!(error = %e, "stream upgrade failed"),
        };
        let streams = match &transport {
            Transport::WebSocket(p) => {
                remotecommand::serve_websocket(upgrade::websocket(io).await, p, opts).await
            }
            Transport::Spdy(_) => remotecommand::serve_spdy(io, opts).await,
        };
        let streams = match streams {
            Ok(s) => s,
            Err(e) => return tracing::debug!(error = %e, "stream session setup failed"),
        };
        tracing::debug!(%ns, %pod, %container, ?transport, exec = command.is_some(), "stream session started");
        match command {
            Some(cmd) => run_exec(&k, shim, id, cmd, opts, streams).await,
            None => run_attach(shim, id, opts, streams).await,
        }
    });
    (StatusCode::SWITCHING_PROTOCOLS, headers).into_response()
}

async fn run_exec(
    k: &Kubelet,
    shim: ShimClient,
    id: String,
    command: Vec<String>,
    opts: Options,
    streams: Streams,
) {
    let (rt, s, args) = (k.runtime.clone(), shim.clone(), command.clone());
    let started =
        tokio::task::spawn_blocking(move || rt.exec(&s, &id, &args, opts.tty, opts.stdin)).await;
    let (pid, mut fds) = match started {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let msg = format!("error executing command in container: {e:#}");
            return streams
                .output
                .finish(remotecommand::internal_error(&msg))
                .await;
        }
        Err(e) => {
            return streams
                .output
                .finish(remotecommand::internal_error(&e.to_string()))
                .await
        }
    };
    // A terminal is one descriptor for everything; pipes come as [stdin
    // writer if asked], stdout, stderr.
    let io = if opts.tty {
        fds.pop().map(|master| Stdio {
            input: master.try_clone().ok().filter(|_| opts.stdin),
            terminal: master.try_clone().ok(),
            outputs: vec![(false, master)],
        })
    } else if fds.len() >= 2 {
        let stderr = fds.pop();
        let stdout = fds.pop();
        Some(Stdio {
            input: fds.pop(),
            terminal: None,
            outputs: [(false, stdout), (true, stderr)]
                .into_iter()
                .filter_map(|(e, fd)| fd.map(|f| (e, f)))
                .collect(),
        })
    } else {
        None
    };
    let Some(io) = io else {
        let msg = "the supervisor returned no streams for the exec";
        return streams
            .output
            .finish(remotecommand::internal_error(msg))
            .await;
    };
    let output = streams.output.clone();
    let readers = pump(io, streams);
    let code = tokio::task::spawn_blocking(move || shim.exec_wait(pid)).await;
    let _ = tokio::time::timeout(OUTPUT_DRAIN, futures::future::join_all(readers)).await;
    let status = match code {
        Ok(Ok(0)) => remotecommand::success(),
        Ok(Ok(code)) => remotecommand::exit_status(code, &command),
        Ok(Err(e)) => remotecommand::internal_error(&format!("{e:#}")),
        Err(e) => remotecommand::internal_error(&e.to_string()),
    };
    output.finish(status).await;
}

async fn run_attach(shim: ShimClient, id: String, opts: Options, streams: Streams) {
    let attached = tokio::task::spawn_blocking(move || shim.attach(&id)).await;
    let (attached, mut fds) = match attached {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let msg = format!("error attaching to container: {e:#}");
            return streams
                .output
                .finish(remotecommand::internal_error(&msg))
                .await;
        }
        Err(e) => {
            return streams
                .output
                .finish(remotecommand::internal_error(&e.to_string()))
                .await
        }
    };
    let input = if attached.input && !fds.is_empty() {
        Some(fds.remove(0))
    } else {
        None
    };
    let terminal = if attached.tty {
        input.as_ref().and_then(|i| i.try_clone().ok())
    } else {
        None
    };
    let mut outputs = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        // Attached output arrives whether or not the client wants it.
        let wanted = if i == 0 {
            opts.stdout || attached.tty
        } else {
            opts.stderr
        };
        if wanted {
            outputs.push((i == 1, fd));
        }
    }
    tracing::debug!(
        ?opts,
        tty = attached.tty,
        input = attached.input,
        terminal = terminal.is_some(),
        "attached"
    );
    let io = Stdio {
        input: input.filter(|_| opts.stdin),
        terminal,
        outputs,
    };
    let output = streams.output.clone();
    futures::future::join_all(pump(io, streams)).await;
    output.finish(remotecommand::success()).await;
}

/// A process's descriptors on our side.
struct Stdio {
    input: Option<OwnedFd>,
    /// A terminal's master, for window sizes.
    terminal: Option<OwnedFd>,
    /// (is stderr, reader)
    outputs: Vec<(bool, OwnedFd)>,
}

/// Starts copying: client stdin into `input`, sizes onto the terminal, and
/// each output to the client. Returns the output copiers, which end at EOF
/// (a terminal master reports EIO once the last process is gone) or when
/// the client is gone.
fn pump(io: Stdio, streams: Streams) -> Vec<JoinHandle<()>> {
    let Streams {
        stdin,
        mut resize,
        output,
    } = streams;
    if let (Some(mut rx), Some(fd)) = (stdin, io.input) {
        tokio::spawn(async move {
            let Ok(w) = async_fd(fd) else { return };
            while let Some(data) = rx.recv().await {
                if write_all(&w, &data).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(term) = io.terminal {
        tokio::spawn(async move {
            while let Some(size) = resize.recv().await {
                tracing::debug!(width = size.width, height = size.height, "window size");
                set_window_size(&term, size);
            }
        });
    }
    io.outputs
        .into_iter()
        .map(|(is_stderr, fd)| tokio::spawn(copy_out(fd, is_stderr, output.clone())))
        .collect()
}

/// Copies one output to the client until EOF, or until the client is gone:
/// then our end closes, and the process (or the supervisor's attach copy)
/// sees a broken pipe, as it would under upstream runtimes.
async fn copy_out(fd: OwnedFd, is_stderr: bool, out: Output) {
    let Ok(r) = async_fd(fd) else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            read = read_some(&r, &mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = out.closed() => return,
        };
        if out.write(is_stderr, &buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A pipe or terminal master, non-blocking, on tokio's reactor.
fn async_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    // SAFETY: an OwnedFd is open, and stays the same descriptor until the
    // AsyncFd that owns it is dropped.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

/// One read; a terminal master reports EIO once the last process is gone.
async fn read_some(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        let read = guard.try_io(|inner| {
            nix::unistd::read(inner.as_raw_fd(), buf).map_err(std::io::Error::from)
        });
        if let Ok(result) = read {
            return result;
        }
    }
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        let written =
            guard.try_io(|inner| nix::unistd::write(inner, data).map_err(std::io::Error::from));
        if let Ok(result) = written {
            data = &data[result?..];
        }
    }
    Ok(())
}

fn set_window_size(term: &OwnedFd, size: TermSize) {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the
    // descriptor is a terminal master we own.
    let rc = unsafe { libc::ioctl(term.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "setting a window size");
    }
}

/// The running container of that name (its latest attempt).
async fn running_container(k: &Kubelet, uid: &str, name: &str) -> Option<(ShimClient, String)> {
    let (rt, uid, name) = (k.runtime.clone(), uid.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let shim = rt.sandbox(&uid).ok()?;
        let latest = shim
            .list()
            .ok()?
            .into_iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt)?;
        (latest.status == Status::Running).then_some((shim, latest.id))
    })
    .await
    .ok()
    .flatten()
}

async fn pod_uid(k: &Kubelet, ns: &str, name: &str) -> Result<String, Response> {
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), ns);
    match pods.get_opt(name).await {
        Ok(Some(p)) => Ok(p.metadata.uid.unwrap_or_default()),
        Ok(None) => Err(status(404, "NotFound", format!("pods {name:?} not found"))),
        Err(e) => Err(status(500, "InternalError", e.to_string())),
    }
}

/// Connects to `port` on the loopback of the pod's network namespace (the
/// host's for hostNetwork pods), as upstream runtimes do. The socket is
/// made on a short-lived thread that entered the namespace: a socket stays
/// in the namespace it was created in.
async fn connect_in(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kone-portfwd".into())
        .spawn(move || {
            let connect = || -> std::io::Result<std::net::TcpStream> {
                if let Some(ns) = &netns {
                    let f = File::open(ns)?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
                }
                let timeout = Duration::from_secs(10);
                let v4 = ([127, 0, 0, 1], port).into();
                let s = std::net::TcpStream::connect_timeout(&v4, timeout).or_else(|e| {
                    let v6 = (std::net::Ipv6Addr::LOCALHOST, port).into();
                    std::net::TcpStream::connect_timeout(&v6, timeout).map_err(|_| e)
                })?;
                s.set_nonblocking(true)?;
                Ok(s)
            };
            let _ = tx.send(connect());
        })?;
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("the connecting thread died"))??;
    tokio::net::TcpStream::from_std(s)
}

fn status(code: u16, reason: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(code, reason, message).into_response()
}

fn refused(code: StatusCode, message: String) -> Response {
    let reason = if code == StatusCode::FORBIDDEN {
        "Forbidden"
    } else {
        "BadRequest"
    };
    status(code.as_u16(), reason, message)
}
