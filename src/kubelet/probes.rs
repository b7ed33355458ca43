//! Liveness, readiness and startup probes (exec, httpGet, tcpSocket, grpc) with
//! upstream's timing: initialDelaySeconds, periodSeconds, timeoutSeconds,
//! successThreshold, failureThreshold. Results are kept per container run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::events::EventType;
use super::Kubelet;
use crate::runtime::shim::client::ShimClient;
use crate::runtime::shim::protocol::ContainerState;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

#[derive(Debug)]
struct Track {
    successes: i32,
    failures: i32,
    /// The settled result; None until a threshold is reached.
    result: Option<bool>,
    last: Option<Instant>,
}

/// Probe state for the runs of one pod's containers, keyed by container id.
#[derive(Default)]
pub struct Prober {
    tracks: HashMap<(String, Kind), Track>,
}

/// What the worker must act on after a probing round.
#[derive(Default, Debug)]
pub struct Verdicts {
    /// Container ids whose liveness or startup probe failed: restart them.
    pub kill: Vec<(String, String)>,
    /// Events to record about containers: (container, type, reason, message).
    pub events: Vec<(String, EventType, &'static str, String)>,
}

fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Startup => c.startup_probe.as_ref(),
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
    }
}

impl Prober {
    /// Whether a container run counts as started (no startup probe, or it passed).
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.result(id, Kind::Startup) == Some(true)
    }

    /// Readiness of a running container: true without a readiness probe.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none() || self.result(id, Kind::Readiness) == Some(true))
    }

    fn result(&self, id: &str, kind: Kind) -> Option<bool> {
        self.tracks
            .get(&(id.to_string(), kind))
            .and_then(|t| t.result)
    }

    /// Forgets runs that are gone.
    pub fn retain(&mut self, live: &[ContainerState]) {
        self.tracks
            .retain(|(id, _), _| live.iter().any(|s| &s.id == id));
    }

    /// Runs the probes that are due for one running container.
    pub async fn round(
        &mut self,
        k: &Kubelet,
        shim: &ShimClient,
        pod_ip: Option<&str>,
        c: &Container,
        run: &ContainerState,
        verdicts: &mut Verdicts,
    ) {
        let started_at = run
            .started_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let Some(started_at) = started_at else { return };
        let age = (chrono::Utc::now() - started_at)
            .to_std()
            .unwrap_or_default();
        let kinds: &[Kind] = if self.started(c, &run.id) {
            &[Kind::Liveness, Kind::Readiness]
        } else {
            &[Kind::Startup]
        };
        for &kind in kinds {
            let Some(p) = probe_of(c, kind) else { continue };
            let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
            if age < delay {
                continue;
            }
            let key = (run.id.clone(), kind);
            let track = self.tracks.entry(key).or_insert(Track {
                successes: 0,
                failures: 0,
                result: None,
                last: None,
            });
            if track.last.is_some_and(|l| l.elapsed() < period) {
                continue;
            }
            track.last = Some(Instant::now());
            let outcome = run_probe(k, shim, pod_ip, c, &run.id, p).await;
            let what = match kind {
                Kind::Liveness => "Liveness",
                Kind::Readiness => "Readiness",
                Kind::Startup => "Startup",
            };
            if let Err(output) = &outcome {
                verdicts.events.push((
                    c.name.clone(),
                    EventType::Warning,
                    "Unhealthy",
                    format!("{what} probe failed: {output}"),
                ));
            }
            if outcome.is_ok() {
                track.successes += 1;
                track.failures = 0;
                if track.successes >= p.success_threshold.unwrap_or(1).max(1) {
                    track.result = Some(true);
                }
            } else {
                track.failures += 1;
                track.successes = 0;
                if track.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                    track.result = Some(false);
                    if kind != Kind::Readiness {
                        tracing::info!(container = %c.name, id = %run.id, "{what} probe failed, restarting");
                        verdicts.events.push((
                            c.name.clone(),
                            EventType::Normal,
                            "Killing",
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                c.name,
                                what.to_lowercase()
                            ),
                        ));
                        verdicts
                            .kill
                            .push((run.id.clone(), format!("{what} probe failed")));
                    }
                }
            }
        }
    }
}

/// Runs a command in a container and waits (up to `limit`) for its exit code.
pub async fn exec(
    k: &Kubelet,
    shim: &ShimClient,
    id: &str,
    args: Vec<String>,
    limit: Duration,
) -> Result<i32, String> {
    let (rt, s, id) = (k.runtime.clone(), shim.clone(), id.to_string());
    let run = tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
        let (pid, _streams) = rt.exec(&s, &id, &args, false, false)?;
        s.exec_wait(pid)
    });
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(Ok(code))) => Ok(code),
        Ok(Ok(Err(e))) => Err(format!("{e:#}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn port_of(c: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// One probe attempt; Err carries what upstream's event says about a failure.
async fn run_probe(
    k: &Kubelet,
    shim: &ShimClient,
    pod_ip: Option<&str>,
    c: &Container,
    id: &str,
    p: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    let ip = pod_ip.unwrap_or("127.0.0.1").to_string();
    if let Some(e) = &p.exec {
        let args = e.command.clone().unwrap_or_default();
        return match exec(k, shim, id, args.clone(), timeout).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("command {args:?} exited with {code}")),
            Err(e) if e == "timed out" => Err(format!(
                "command {args:?} timed out after {}s",
                timeout.as_secs()
            )),
            Err(e) => Err(e),
        };
    }
    if let Some(h) = &p.http_get {
        let port = port_of(c, &h.port).ok_or_else(|| unknown_port(&h.port))?;
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = h.host.clone().unwrap_or(ip);
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("{scheme}://{host}:{port}{path}");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .tls_danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(&url).header("User-Agent", "kube-probe/1.33");
        for hdr in h.http_headers.iter().flatten() {
            req = req.header(hdr.name.as_str(), hdr.value.as_str());
        }
        return match req.send().await {
            Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
            Ok(r) => Err(format!(
                "HTTP probe failed with statuscode: {}",
                r.status().as_u16()
            )),
            Err(e) => Err(format!("Get \"{url}\": {}", root_cause(&e))),
        };
    }
    if let Some(t) = &p.tcp_socket {
        let port = port_of(c, &t.port).ok_or_else(|| unknown_port(&t.port))?;
        let host = t.host.clone().unwrap_or(ip);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        return match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: connect: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(g) = &p.grpc {
        let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
        let service = g.service.as_deref().unwrap_or_default();
        return super::grpcprobe::check(&ip, port, service, timeout).await;
    }
    Err("the probe has no handler".into())
}

fn unknown_port(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => format!("invalid port number: {n}"),
        IntOrString::String(name) => format!("unknown port name {name:?}"),
    }
}

/// The innermost error, which says what went wrong (connection refused, …).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
