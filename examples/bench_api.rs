//! API benchmark: starts `kone server` on a free 127.0.0.1 port with a
//! throw-away data dir, drives it over HTTPS with a bearer token and prints
//! a table of the figures the project tracks, then one machine-readable
//! line (`creates_per_s_64=… p99_ms_64=… watch_p99_ms=… list10k_ms=…
//! idle_rss_mb=… [more key=value]`).
//!
//! Run it with `scripts/bench-api.sh [--quick] [--keep] [--keep-revisions N]`,
//! or directly: `target/release/examples/bench_api --kone target/release/kone`.
//!
//! Phases, in this order:
//! 1. idle RSS of the server right after /readyz answers 200;
//! 2. store size: create 1,000 ConfigMaps, PUT 200,000 updates over them
//!    (64 workers, unconditional PUTs), wait for background compaction
//!    (KONE_COMPACT_* env makes it run every 5 s) and compare the database
//!    file size (state.db + state.db-wal) with the live JSON size of the
//!    objects. It runs first so the database holds (almost) nothing else;
//! 3. ConfigMap creates at 1, 16 and 64 concurrent clients, each client its
//!    own reqwest::Client (its own TLS connection, warmed up before timing);
//! 4. watch delivery latency with 100 watchers;
//! 5. LIST of 10,000 ConfigMaps (median of 10);
//! 6. strategic-merge PATCHes and server-side applies of 3-container
//!    Deployments at 16 clients (each client patching its own Deployment);
//! 7. server RSS after the run.
//!
//! `--quick` divides the counts by ten for a smoke run.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

/// How the benchmark is sized.
struct Counts {
    /// (concurrent clients, creates) per level.
    levels: Vec<(usize, usize)>,
    watchers: usize,
    watch_events: usize,
    list_items: usize,
    store_objects: usize,
    store_updates: usize,
    /// Patches per kind (strategic merge, server-side apply), 16 clients.
    patches: usize,
}

impl Counts {
    fn new(quick: bool) -> Counts {
        let d = if quick { 10 } else { 1 };
        Counts {
            levels: vec![(1, 2_000 / d), (16, 10_000 / d), (64, 10_000 / d)],
            watchers: 100 / d,
            watch_events: 200 / d,
            list_items: 10_000 / d,
            store_objects: 1_000 / d,
            store_updates: 200_000 / d,
            patches: 8_000 / d,
        }
    }
}

/// Upper bounds on each phase's wall time, so a slow server cannot make the
/// benchmark run for ever; a phase cut short says so in its output.
const CREATE_LEVEL_LIMIT: Duration = Duration::from_secs(60);
const PATCH_LIMIT: Duration = Duration::from_secs(60);
/// Concurrent clients of the patch phase.
const PATCH_CLIENTS: usize = 16;
const FILL_LIMIT: Duration = Duration::from_secs(90);
const UPDATE_LIMIT: Duration = Duration::from_secs(150);
const COMPACT_WAIT: Duration = Duration::from_secs(30);
const WATCH_SPACING: Duration = Duration::from_millis(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A worker that sees this many errors in a row stops.
const MAX_CONSECUTIVE_ERRORS: usize = 50;

struct Opts {
    kone: PathBuf,
    quick: bool,
    keep: bool,
    keep_revisions: String,
    /// Run only the patch phase (for profiling the patch path).
    only_patches: bool,
}

fn usage() -> &'static str {
    "usage: bench_api [--kone PATH] [--quick] [--keep] [--keep-revisions N]\n\
     \x20 --kone PATH          the kone binary to start (default target/release/kone)\n\
     \x20 --quick              10x smaller counts, for a smoke run\n\
     \x20 --keep               keep the temporary data dir (server.log, database)\n\
     \x20 --keep-revisions N   KONE_COMPACT_KEEP_REVISIONS for the server (default 1000, the server default)\n\
     \x20 --only patches       run only the patch phase (for profiling the patch path)"
}

fn parse_args() -> Result<Opts> {
    let mut opts = Opts {
        kone: PathBuf::from("target/release/kone"),
        quick: false,
        keep: false,
        keep_revisions: "1000".into(),
        only_patches: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{name} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--kone" => opts.kone = PathBuf::from(value("--kone")?),
            "--keep-revisions" => {
                let v = value("--keep-revisions")?;
                v.parse::<u64>()
                    .with_context(|| format!("--keep-revisions: {v:?} is not a number"))?;
                opts.keep_revisions = v;
            }
            "--quick" => opts.quick = true,
            "--keep" => opts.keep = true,
            "--only" => match value("--only")?.as_str() {
                "patches" => opts.only_patches = true,
                other => bail!("--only: unknown phase {other:?}\n{}", usage()),
            },
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// The server process

/// The running `kone server`; dropping it stops the server (SIGTERM, then
/// SIGKILL after 5 s), also when the benchmark fails or panics.
struct ServerGuard {
    child: Child,
}

impl ServerGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench: the server did not stop within 5 s of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Layout {
    root: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    ca: PathBuf,
    db: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        let data_dir = root.join("data");
        Layout {
            root: root.to_path_buf(),
            log: root.join("server.log"),
            ca: data_dir.join("server/tls/server-ca.crt"),
            db: data_dir.join("server/db/state.db"),
            data_dir,
        }
    }

    /// state.db plus its write-ahead log, in bytes.
    fn db_size(&self) -> u64 {
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.db.clone().into_os_string();
        wal.push("-wal");
        size(&self.db) + size(Path::new(&wal))
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr().context("reading the free port")?.port())
}

fn start_server(opts: &Opts, layout: &Layout, port: u16, token: &str) -> Result<ServerGuard> {
    let config = layout.root.join("config.yaml");
    let tokens = layout.root.join("tokens.csv");
    fs::write(&config, "").context("writing config.yaml")?;
    fs::write(&tokens, format!("{token},bench,1000,\"system:masters\"\n"))
        .context("writing tokens.csv")?;
    let log = File::create(&layout.log).context("creating server.log")?;
    let log2 = log
        .try_clone()
        .context("duplicating the server.log handle")?;
    let mut cmd = Command::new(&opts.kone);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(&layout.data_dir)
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--bind-address")
        .arg("127.0.0.1")
        .arg("--write-kubeconfig")
        .arg(layout.root.join("kubeconfig.yaml"))
        .arg("--token-auth-file")
        .arg(&tokens)
        .arg("--config")
        .arg(&config)
        .arg("--disable-agent")
        .env("KONE_COMPACT_INTERVAL_SECS", "5")
        .env("KONE_COMPACT_KEEP_REVISIONS", &opts.keep_revisions)
        .env("KONE_COMPACT_KEEP_SECS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // The server must not outlive the benchmark even if it is killed.
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", opts.kone.display()))?;
    Ok(ServerGuard { child })
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `/proc/PID/status` memory field ("VmRSS:", "RssAnon:", ...) in MiB.
fn status_mb(pid: u32, name: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kb: f64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// (VmRSS, VmHWM) of a process in MiB.
fn rss_mb(pid: u32) -> Option<(f64, f64)> {
    Some((status_mb(pid, "VmRSS:")?, status_mb(pid, "VmHWM:")?))
}

/// User + system CPU seconds a process has used.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / if hz > 0.0 { hz } else { 100.0 })
}

// ---------------------------------------------------------------------------
// HTTP

struct Bench {
    base: String,
    token: String,
    ca: reqwest::Certificate,
    errors: Errors,
}

#[derive(Default)]
struct Errors {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    fn add(&self, what: String) {
        if self.count.fetch_add(1, Ordering::Relaxed) < 8 {
            self.samples
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(what);
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

impl Bench {
    /// A client of its own: its own connection pool, so its own TLS
    /// connection. `timeout` None for watches.
    fn client(&self, timeout: Option<Duration>) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([self.ca.clone()])
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4)
            .connect_timeout(Duration::from_secs(10));
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().context("building an HTTPS client")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One JSON request that must answer one of `ok` statuses.
    async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value> {
        let mut req = client
            .request(method.clone(), self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b)?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the body"))?;
        if !ok.contains(&status.as_u16()) {
            bail!("{method} {path}: HTTP {status}: {}", snippet(&bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{method} {path}: the answer is not JSON: {}",
                snippet(&bytes)
            )
        })
    }

    async fn create_namespace(&self, client: &reqwest::Client, ns: &str) -> Result<()> {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        self.call(
            client,
            reqwest::Method::POST,
            "/api/v1/namespaces",
            Some(&body),
            &[201, 409],
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
        Ok(())
    }
}

fn configmap(ns: &str, name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "data": {"value": value, "note": "kone api benchmark"},
    })
}

async fn wait_ready(
    bench_ca: &Path,
    base: &str,
    server: &mut ServerGuard,
    log: &Path,
) -> Result<reqwest::Certificate> {
    let start = Instant::now();
    let mut last_err = String::from("the CA file never appeared");
    while start.elapsed() < READY_TIMEOUT {
        if let Some(status) = server.exited() {
            bail!(
                "the server exited ({status}) before it was ready; last log lines:\n{}",
                log_tail(log, 30)
            );
        }
        if let Ok(pem) = fs::read(bench_ca) {
            let ca = reqwest::Certificate::from_pem(&pem).context("parsing the server CA")?;
            let client = reqwest::Client::builder()
                .tls_certs_only([ca.clone()])
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .context("building an HTTPS client")?;
            match client.get(format!("{base}/readyz")).send().await {
                Ok(r) if r.status() == 200 => return Ok(ca),
                Ok(r) => last_err = format!("/readyz answered {}", r.status()),
                Err(e) => last_err = format!("/readyz: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the server was not ready after {:?} ({last_err}); last log lines:\n{}",
        READY_TIMEOUT,
        log_tail(log, 30)
    )
}

// ---------------------------------------------------------------------------
// Measurements

fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

struct RunStats {
    ok: usize,
    attempted: usize,
    wall: Duration,
    lats: Vec<Duration>,
    http: String,
    cut_short: bool,
}

impl RunStats {
    fn per_s(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn p(&self, p: f64) -> f64 {
        pct_ms(&self.lats, p)
    }
    fn summary(&self, what: &str) -> String {
        format!(
            "{what}: {}/{} ok in {:.2} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{} [{}]",
            self.ok,
            self.attempted,
            self.wall.as_secs_f64(),
            self.per_s(),
            self.p(50.0),
            self.p(99.0),
            self.p(100.0),
            if self.cut_short { " (cut short by the time limit)" } else { "" },
            self.http
        )
    }
}

type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// One load run: `total` requests made by `make(client, k)` for k in
/// 0..total, spread over `workers` concurrent tasks: worker w makes requests
/// w, w + workers, w + 2 * workers, ... one after the other.
struct Load {
    label: String,
    workers: usize,
    total: usize,
    /// Stop starting requests after this long.
    limit: Duration,
    /// The status every request must answer.
    expect: u16,
    /// An authenticated GET each worker makes before the clock starts.
    warmup_path: String,
    make: MakeRequest,
}

/// Run a load, each worker with its own client (and connection), warmed up
/// before the clock starts.
async fn run_workers(bench: &Arc<Bench>, load: Load) -> Result<RunStats> {
    let Load {
        label,
        workers,
        total,
        limit,
        expect,
        warmup_path,
        make,
    } = load;
    let attempted = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let started: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let bench = bench.clone();
        let attempted = attempted.clone();
        let barrier = barrier.clone();
        let started = started.clone();
        let make = make.clone();
        let label = label.clone();
        let warmup = bench.url(&warmup_path);
        tasks.push(tokio::spawn(async move {
            let client = bench.client(Some(REQUEST_TIMEOUT));
            if let Ok(c) = &client {
                // Connect (TCP + TLS) before the clock starts.
                if let Err(e) = c.get(&warmup).bearer_auth(&bench.token).send().await {
                    bench.errors.add(format!("{label}: warm-up GET: {e}"));
                }
            }
            barrier.wait().await;
            let client = client?;
            let start = *started.get_or_init(Instant::now);
            let mut lats = Vec::new();
            let mut http = String::new();
            let mut consecutive = 0;
            // Worker w makes requests w, w + workers, w + 2 * workers, ...
            for k in (w..total).step_by(workers) {
                if start.elapsed() > limit {
                    break;
                }
                attempted.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let result = match make(&client, k).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        if http.is_empty() {
                            http = format!("{:?}", resp.version());
                        }
                        match resp.bytes().await {
                            Ok(_) if status.as_u16() == expect => Ok(()),
                            Ok(body) => Err(format!("HTTP {status}: {}", snippet(&body))),
                            Err(e) => Err(format!("reading the answer: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e}")),
                };
                match result {
                    Ok(()) => {
                        lats.push(t.elapsed());
                        consecutive = 0;
                    }
                    Err(e) => {
                        bench.errors.add(format!("{label} #{k}: {e}"));
                        consecutive += 1;
                        if consecutive >= MAX_CONSECUTIVE_ERRORS {
                            bench.errors.add(format!(
                                "{label}: a worker gave up after {consecutive} errors in a row"
                            ));
                            break;
                        }
                    }
                }
            }
            anyhow::Ok((lats, http))
        }));
    }
    barrier.wait().await;
    let start = *started.get_or_init(Instant::now);
    let mut lats = Vec::with_capacity(total);
    let mut http = String::new();
    for t in tasks {
        let (l, h) = t.await.context("a worker task panicked")??;
        lats.extend(l);
        if http.is_empty() {
            http = h;
        }
    }
    let wall = start.elapsed();
    lats.sort_unstable();
    let attempted = attempted.load(Ordering::Relaxed);
    Ok(RunStats {
        ok: lats.len(),
        attempted,
        wall,
        lats,
        http: format!("{workers} clients, 1 connection each, {http}"),
        cut_short: attempted < total,
    })
}

fn create_requests(bench: &Arc<Bench>, ns: &str, prefix: &str) -> MakeRequest {
    let bench = bench.clone();
    let ns = ns.to_string();
    let prefix = prefix.to_string();
    let url = bench.url(&format!("/api/v1/namespaces/{ns}/configmaps"));
    Arc::new(move |c: &reqwest::Client, k: usize| {
        let body = serde_json::to_vec(&configmap(&ns, &format!("{prefix}{k}"), &k.to_string()))
            .unwrap_or_default();
        c.post(&url)
            .bearer_auth(&bench.token)
            .header("content-type", "application/json")
            .body(body)
    })
}

struct StoreResult {
    updates: RunStats,
    db_before_mb: f64,
    db_after_updates_mb: f64,
    db_final_mb: f64,
    live_mb: f64,
    trajectory: Vec<(u64, f64)>,
}

async fn phase_store(bench: &Arc<Bench>, layout: &Layout, counts: &Counts) -> Result<StoreResult> {
    let ns = "bench-store";
    let client = bench.client(Some(REQUEST_TIMEOUT))?;
    bench.create_namespace(&client, ns).await?;
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let db_before_mb = mb(layout.db_size());
    let objects = counts.store_objects;
    let workers = 64;
    if objects < workers {
        bail!("the store phase needs at least {workers} objects");
    }
    let fill = run_workers(
        bench,
        Load {
            label: "store fill".into(),
            workers: 64,
            total: objects,
            limit: FILL_LIMIT,
            expect: 201,
            warmup_path: format!("/api/v1/namespaces/{ns}"),
            make: create_requests(bench, ns, "u-"),
        },
    )
    .await?;
    eprintln!("  {}", fill.summary(&format!("created {objects} objects")));
    if fill.ok < objects {
        bail!("only {} of {objects} objects were created", fill.ok);
    }
    let make: MakeRequest = {
        let bench = bench.clone();
        // Request k is made by worker k % 64; each worker updates only its
        // own objects (w, w + 64, w + 128, ...) in turn, so no two updates
        // of one object are ever in flight together.
        Arc::new(move |c: &reqwest::Client, k: usize| {
            let (w, i) = (k % workers, k / workers);
            let owned = (objects - w).div_ceil(workers);
            let name = format!("u-{}", w + workers * (i % owned));
            let body = serde_json::to_vec(&configmap(ns, &name, &format!("update-{k}")))
                .unwrap_or_default();
            c.put(bench.url(&format!("/api/v1/namespaces/{ns}/configmaps/{name}")))
                .bearer_auth(&bench.token)
                .header("content-type", "application/json")
                .body(body)
        })
    };
    let updates = run_workers(
        bench,
        Load {
            label: "update".into(),
            workers,
            total: counts.store_updates,
            limit: UPDATE_LIMIT,
            expect: 200,
            warmup_path: format!("/api/v1/namespaces/{ns}"),
            make,
        },
    )
    .await?;
    eprintln!(
        "  {}",
        updates.summary(&format!("{} unconditional PUTs", counts.store_updates))
    );
    let db_after_updates_mb = mb(layout.db_size());

    // Background compaction runs every 5 s: poll until the size settles.
    let start = Instant::now();
    let mut last = layout.db_size();
    let mut last_change = Instant::now();
    let mut trajectory = vec![(0, mb(last))];
    while start.elapsed() < COMPACT_WAIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = layout.db_size();
        if now != last {
            last = now;
            last_change = Instant::now();
            trajectory.push((start.elapsed().as_secs(), mb(now)));
        }
        if start.elapsed() >= Duration::from_secs(12)
            && last_change.elapsed() >= Duration::from_secs(6)
        {
            break;
        }
    }
    let db_final_mb = mb(layout.db_size());

    let list = bench
        .call(
            &client,
            reqwest::Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            None,
            &[200],
        )
        .await?;
    let items = list["items"]
        .as_array()
        .context("the list has no items array")?;
    if items.len() != objects {
        bench.errors.add(format!(
            "store: the list holds {} items, not {objects}",
            items.len()
        ));
    }
    let live: usize = items
        .iter()
        .map(|i| serde_json::to_vec(i).map(|v| v.len()).unwrap_or(0))
        .sum();
    Ok(StoreResult {
        updates,
        db_before_mb,
        db_after_updates_mb,
        db_final_mb,
        live_mb: mb(live as u64),
        trajectory,
    })
}

async fn phase_creates(bench: &Arc<Bench>, clients: usize, total: usize) -> Result<RunStats> {
    let ns = format!("bench-create-{clients}");
    let client = bench.client(Some(REQUEST_TIMEOUT))?;
    bench.create_namespace(&client, &ns).await?;
    let stats = run_workers(
        bench,
        Load {
            label: format!("create x{clients}"),
            workers: clients,
            total,
            limit: CREATE_LEVEL_LIMIT,
            expect: 201,
            warmup_path: format!("/api/v1/namespaces/{ns}"),
            make: create_requests(bench, &ns, "c-"),
        },
    )
    .await?;
    eprintln!(
        "  {}",
        stats.summary(&format!("{total} creates at {clients} clients"))
    );
    Ok(stats)
}

/// A Deployment with three containers (no replicas: no pods to make), its
/// annotation `bench/n` set to `n`: the apply configuration of the patch
/// phase and the object it starts from.
fn deployment(ns: &str, name: &str, n: usize) -> Value {
    let container = |i: usize| {
        json!({
            "name": format!("c{i}"),
            "image": "busybox:1.36",
            "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080 + i, "name": format!("p{i}")}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name},
            "annotations": {"bench/n": n.to_string()}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container(0), container(1), container(2)]},
            },
        },
    })
}

#[derive(Clone, Copy)]
enum PatchKind {
    Strategic,
    Apply,
}

/// `total` patches at 16 clients, client w patching Deployment w only, each
/// patch a real change (the annotation takes the request number).
async fn phase_patches(bench: &Arc<Bench>, kind: PatchKind, total: usize) -> Result<RunStats> {
    let ns = match kind {
        PatchKind::Strategic => "bench-smp",
        PatchKind::Apply => "bench-ssa",
    };
    let client = bench.client(Some(REQUEST_TIMEOUT))?;
    bench.create_namespace(&client, ns).await?;
    for w in 0..PATCH_CLIENTS {
        let name = format!("d{w}");
        let d = deployment(ns, &name, 0);
        let collection = format!("/apis/apps/v1/namespaces/{ns}/deployments");
        // The applier creates its own objects: fields another manager set
        // would (rightly) conflict with its applies.
        let made = match kind {
            PatchKind::Strategic => client.post(bench.url(&collection)),
            PatchKind::Apply => {
                client.patch(bench.url(&format!("{collection}/{name}?fieldManager=bench")))
            }
        };
        let content_type = match kind {
            PatchKind::Strategic => "application/json",
            PatchKind::Apply => "application/apply-patch+yaml",
        };
        let resp = made
            .bearer_auth(&bench.token)
            .header("content-type", content_type)
            .body(serde_json::to_vec(&d)?)
            .send()
            .await?;
        if resp.status().as_u16() != 201 {
            bail!("creating deployment {name}: HTTP {}", resp.status());
        }
    }
    let make: MakeRequest = {
        let bench = bench.clone();
        Arc::new(move |c: &reqwest::Client, k: usize| {
            let name = format!("d{}", k % PATCH_CLIENTS);
            let url = bench.url(&format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"));
            let (url, content_type, body) = match kind {
                PatchKind::Strategic => (
                    url,
                    "application/strategic-merge-patch+json",
                    json!({
                        "metadata": {"annotations": {"bench/n": k.to_string()}},
                        "spec": {"template": {"spec": {"containers": [
                            {"name": "c1", "env": [{"name": "B", "value": "2"}]}
                        ]}}},
                    }),
                ),
                PatchKind::Apply => (
                    format!("{url}?fieldManager=bench"),
                    "application/apply-patch+yaml",
                    deployment(ns, &name, k),
                ),
            };
            c.patch(url)
                .bearer_auth(&bench.token)
                .header("content-type", content_type)
                .body(serde_json::to_vec(&body).unwrap_or_default())
        })
    };
    let label = match kind {
        PatchKind::Strategic => "strategic merge patch",
        PatchKind::Apply => "server-side apply",
    };
    let stats = run_workers(
        bench,
        Load {
            label: label.into(),
            workers: PATCH_CLIENTS,
            total,
            limit: PATCH_LIMIT,
            expect: 200,
            warmup_path: format!("/api/v1/namespaces/{ns}"),
            make,
        },
    )
    .await?;
    eprintln!(
        "  {}",
        stats.summary(&format!(
            "{total} requests ({label}) at {PATCH_CLIENTS} clients"
        ))
    );
    Ok(stats)
}

struct WatchResult {
    lats: Vec<Duration>,
    expected: usize,
    create_p50: f64,
}

async fn watcher(
    bench: Arc<Bench>,
    path: String,
    send_times: Arc<Vec<OnceLock<Instant>>>,
    connected: Arc<AtomicUsize>,
    deadline: tokio::time::Instant,
) -> Result<Vec<Duration>> {
    let client = bench.client(None)?;
    let resp = tokio::time::timeout_at(
        deadline,
        client
            .get(bench.url(&path))
            .bearer_auth(&bench.token)
            .send(),
    )
    .await
    .map_err(|_| anyhow!("GET {path}: no answer before the deadline"))?
    .with_context(|| format!("GET {path}"))?;
    let status = resp.status();
    if status != 200 {
        let body = resp.bytes().await.unwrap_or_default();
        bail!("GET {path}: HTTP {status}: {}", snippet(&body));
    }
    connected.fetch_add(1, Ordering::SeqCst);
    let n = send_times.len();
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut lats = Vec::with_capacity(n);
    while lats.len() < n {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => return Err(anyhow!(e).context(format!("reading the watch {path}"))),
            Ok(Some(Ok(c))) => c,
        };
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ev: Value = serde_json::from_slice(&line)
                .with_context(|| format!("a watch line is not JSON: {}", snippet(&line)))?;
            match ev["type"].as_str() {
                Some("ADDED") => {
                    let name = ev["object"]["metadata"]["name"].as_str().unwrap_or("");
                    let idx = name
                        .strip_prefix("w-")
                        .and_then(|i| i.parse::<usize>().ok());
                    match idx.and_then(|i| send_times.get(i)).and_then(|t| t.get()) {
                        Some(sent) => lats.push(now.saturating_duration_since(*sent)),
                        None => bail!("watch: ADDED {name:?} that was never sent"),
                    }
                }
                Some("ERROR") => bail!("watch ERROR event: {}", snippet(&line)),
                _ => {}
            }
        }
    }
    Ok(lats)
}

async fn phase_watch(bench: &Arc<Bench>, counts: &Counts) -> Result<WatchResult> {
    let ns = "bench-watch";
    let client = bench.client(Some(REQUEST_TIMEOUT))?;
    bench.create_namespace(&client, ns).await?;
    let list = bench
        .call(
            &client,
            reqwest::Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            None,
            &[200],
        )
        .await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("the list has no metadata.resourceVersion")?
        .to_string();
    let n = counts.watch_events;
    let send_times: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let connected = Arc::new(AtomicUsize::new(0));
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(30) + WATCH_SPACING * (3 * n as u32);
    let path = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=300"
    );
    let mut tasks = Vec::new();
    for _ in 0..counts.watchers {
        tasks.push(tokio::spawn(watcher(
            bench.clone(),
            path.clone(),
            send_times.clone(),
            connected.clone(),
            deadline,
        )));
    }
    let start = Instant::now();
    while connected.load(Ordering::SeqCst) < counts.watchers
        && start.elapsed() < Duration::from_secs(15)
    {
        if tasks.iter().any(|t| t.is_finished()) {
            break; // one failed early; its error is collected below
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let up = connected.load(Ordering::SeqCst);
    if up < counts.watchers {
        eprintln!(
            "  warning: only {up} of {} watches had answered with headers after {:.1} s",
            counts.watchers,
            start.elapsed().as_secs_f64()
        );
    }
    // Let the server finish registering the last watches.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let url = bench.url(&format!("/api/v1/namespaces/{ns}/configmaps"));
    let mut create_lats = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(WATCH_SPACING);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (i, slot) in send_times.iter().enumerate() {
        tick.tick().await;
        let body = serde_json::to_vec(&configmap(ns, &format!("w-{i}"), "watched"))?;
        let t = Instant::now();
        let _ = slot.set(t);
        let resp = client
            .post(&url)
            .bearer_auth(&bench.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("creating w-{i}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("creating w-{i}: reading the answer"))?;
        if status != 201 {
            bail!("creating w-{i}: HTTP {status}: {}", snippet(&bytes));
        }
        create_lats.push(t.elapsed());
    }
    create_lats.sort_unstable();
    let mut lats = Vec::with_capacity(n * counts.watchers);
    let mut failures = 0;
    for t in tasks {
        match t.await.context("a watcher task panicked")? {
            Ok(l) => lats.extend(l),
            Err(e) => {
                failures += 1;
                bench.errors.add(format!("watcher: {e:#}"));
            }
        }
    }
    if failures == counts.watchers {
        bail!("every watcher failed; see the errors below");
    }
    lats.sort_unstable();
    Ok(WatchResult {
        lats,
        expected: n * counts.watchers,
        create_p50: pct_ms(&create_lats, 50.0),
    })
}

struct ListResult {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    body_mb: f64,
    items: usize,
}

async fn phase_list(bench: &Arc<Bench>, counts: &Counts) -> Result<ListResult> {
    let ns = "bench-list";
    let client = bench.client(Some(REQUEST_TIMEOUT))?;
    bench.create_namespace(&client, ns).await?;
    let n = counts.list_items;
    let fill = run_workers(
        bench,
        Load {
            label: "list fill".into(),
            workers: 64,
            total: n,
            limit: FILL_LIMIT,
            expect: 201,
            warmup_path: format!("/api/v1/namespaces/{ns}"),
            make: create_requests(bench, ns, "l-"),
        },
    )
    .await?;
    eprintln!("  {}", fill.summary(&format!("created {n} objects")));
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let url = bench.url(&path);
    let mut times = Vec::new();
    let mut body_mb = 0.0;
    let mut items = 0;
    for i in 0..10 {
        let t = Instant::now();
        let resp = client
            .get(&url)
            .bearer_auth(&bench.token)
            .send()
            .await
            .with_context(|| format!("GET {path} (#{i})"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("GET {path} (#{i}): reading the body"))?;
        let elapsed = t.elapsed();
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {}", snippet(&bytes));
        }
        let v: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("GET {path}: not JSON"))?;
        items = v["items"].as_array().map(Vec::len).unwrap_or(0);
        if items != n {
            bail!("GET {path}: {items} items, expected {n}");
        }
        body_mb = bytes.len() as f64 / (1024.0 * 1024.0);
        times.push(elapsed);
    }
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(ListResult {
        median_ms: (ms(times[4]) + ms(times[5])) / 2.0,
        min_ms: ms(times[0]),
        max_ms: ms(times[9]),
        body_mb,
        items,
    })
}

// ---------------------------------------------------------------------------
// Report

struct Report {
    rows: Vec<[String; 4]>,
    keys: Vec<(String, f64)>,
}

fn f1(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-1".into()
    }
}

impl Report {
    fn row(&mut self, metric: &str, value: String, target: &str, ok: Option<bool>) {
        let ok = match ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        self.rows
            .push([metric.into(), value, target.into(), ok.into()]);
    }

    fn failed(&mut self, metric: &str, target: &str) {
        self.rows
            .push([metric.into(), "FAILED".into(), target.into(), "NO".into()]);
    }

    fn key(&mut self, k: &str, v: f64) {
        self.keys.push((k.into(), v));
    }

    fn print(&self) {
        let header = ["metric", "value", "target", "ok?"];
        let mut w = header.map(str::len);
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |c: &[String; 4]| {
            format!(
                "{:<w0$}  {:>w1$}  {:<w2$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            )
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        let _ = writeln!(out, "{}", "-".repeat(w.iter().sum::<usize>() + 6 + 3));
        for r in &self.rows {
            let _ = writeln!(out, "{}", line(r));
        }
        let _ = writeln!(out);
        let kv: Vec<String> = self
            .keys
            .iter()
            .map(|(k, v)| format!("{k}={}", f1(*v)))
            .collect();
        let _ = writeln!(out, "{}", kv.join(" "));
        let _ = out.flush();
    }
}

/// The patch phase: strategic merge and server-side apply rows of the
/// report, and their machine-readable keys.
async fn patch_rows(
    bench: &Arc<Bench>,
    pid: u32,
    counts: &Counts,
    rep: &mut Report,
    all_ok: &mut bool,
    q: &str,
    rss_note: &dyn Fn(&str),
) -> Vec<(String, f64)> {
    let mut patch_keys = Vec::new();
    for (kind, what, key) in [
        (PatchKind::Strategic, "strategic-merge PATCH", "smp"),
        (PatchKind::Apply, "server-side apply", "ssa"),
    ] {
        eprintln!("bench: {what} of 3-container Deployments at {PATCH_CLIENTS} clients{q}");
        let cpu_before = cpu_secs(pid).unwrap_or(f64::NAN);
        match phase_patches(bench, kind, counts.patches).await {
            Ok(s) => {
                // The client shares the machine's cores with the server, so
                // the server's CPU per patch is what bounds the rate.
                let cpu_ms = (cpu_secs(pid).unwrap_or(f64::NAN) - cpu_before) * 1000.0
                    / counts.patches as f64;
                rep.row(
                    &format!("server CPU per {what} (ms)"),
                    format!("{cpu_ms:.2}"),
                    "",
                    None,
                );
                patch_keys.push((format!("{key}_cpu_ms"), cpu_ms));
                rep.row(
                    &format!("{what}/s, {PATCH_CLIENTS} clients"),
                    format!("{:.0}", s.per_s()),
                    ">= 2000",
                    Some(s.per_s() >= 2000.0),
                );
                rep.row(
                    &format!("{what} p50 / p99 (ms)"),
                    format!("{:.1} / {:.1}", s.p(50.0), s.p(99.0)),
                    "p99 <= 30",
                    Some(s.p(99.0) <= 30.0),
                );
                patch_keys.push((format!("{key}_per_s_16"), s.per_s()));
                patch_keys.push((format!("{key}_p50_ms_16"), s.p(50.0)));
                patch_keys.push((format!("{key}_p99_ms_16"), s.p(99.0)));
            }
            Err(e) => {
                *all_ok = false;
                eprintln!("  FAILED: {e:#}");
                rep.failed(&format!("{what}/s, {PATCH_CLIENTS} clients"), ">= 2000");
            }
        }
        rss_note(&format!("the {what} phase"));
    }

    patch_keys
}

async fn run(
    opts: &Opts,
    layout: &Layout,
    server: &mut ServerGuard,
    port: u16,
    token: String,
) -> Result<bool> {
    let counts = Counts::new(opts.quick);
    let base = format!("https://127.0.0.1:{port}");
    let t0 = Instant::now();
    let ca = wait_ready(&layout.ca, &base, server, &layout.log).await?;
    let pid = server.pid();
    eprintln!(
        "bench: server pid {pid} ready on {base} after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    // Let start-up work (bootstrap objects, first compaction) settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = rss_mb(pid).context("reading the server's /proc/PID/status")?;
    let cpu_start = cpu_secs(pid).unwrap_or(f64::NAN);
    eprintln!("bench: idle RSS {idle_rss:.1} MiB");
    let bench = Arc::new(Bench {
        base,
        token,
        ca,
        errors: Errors::default(),
    });
    let mut rep = Report {
        rows: Vec::new(),
        keys: Vec::new(),
    };
    let mut all_ok = true;
    let q = if opts.quick { " (quick)" } else { "" };
    let rss_note = |after: &str| {
        if let Some((rss, _)) = rss_mb(pid) {
            let anon = status_mb(pid, "RssAnon:").unwrap_or(f64::NAN);
            let file = status_mb(pid, "RssFile:").unwrap_or(f64::NAN);
            eprintln!("  server RSS after {after}: {rss:.1} MiB (anon {anon:.1}, file {file:.1})");
        }
    };
    if opts.only_patches {
        for (k, v) in patch_rows(&bench, pid, &counts, &mut rep, &mut all_ok, q, &rss_note).await {
            rep.key(&k, v);
        }
        let cpu = cpu_secs(pid).unwrap_or(f64::NAN) - cpu_start;
        rep.row("server CPU during the run (s)", f1(cpu), "", None);
        let errors = bench.errors.count.load(Ordering::Relaxed);
        rep.row("request errors", errors.to_string(), "0", Some(errors == 0));
        rep.print();
        return Ok(all_ok && errors == 0);
    }

    // Store size first, while the database holds little else.
    eprintln!(
        "bench: store size: {} objects, {} updates{q}",
        counts.store_objects, counts.store_updates
    );
    let store = phase_store(&bench, layout, &counts).await;
    let mut store_keys = Vec::new();
    match &store {
        Ok(s) => {
            let ratio = s.db_final_mb / s.live_mb;
            eprintln!(
                "  db size: {:.2} MiB before, {:.2} MiB after the updates, {:.2} MiB after compaction (size over time: {})",
                s.db_before_mb,
                s.db_after_updates_mb,
                s.db_final_mb,
                s.trajectory.iter().map(|(t, m)| format!("{t}s:{m:.2}")).collect::<Vec<_>>().join(" ")
            );
            rep.row(
                &format!("updates/s (64 clients, {} objects)", counts.store_objects),
                format!("{:.0}", s.updates.per_s()),
                "",
                None,
            );
            rep.row(
                "update p50 / p99 (ms)",
                format!("{:.1} / {:.1}", s.updates.p(50.0), s.updates.p(99.0)),
                "",
                None,
            );
            rep.row(
                &format!("db file after {} updates (MiB)", s.updates.ok),
                format!("{:.2}", s.db_final_mb),
                "",
                None,
            );
            rep.row("live data (MiB)", format!("{:.3}", s.live_mb), "", None);
            rep.row(
                "db file / live data",
                format!("{ratio:.1}x"),
                "<= 4x",
                Some(ratio <= 4.0),
            );
            store_keys = vec![
                ("updates_per_s", s.updates.per_s()),
                ("db_mb", s.db_final_mb),
                ("live_kb", s.live_mb * 1024.0),
                ("db_ratio", ratio),
            ];
        }
        Err(e) => {
            all_ok = false;
            eprintln!("  FAILED: {e:#}");
            rep.failed("db file / live data", "<= 4x");
        }
    }

    rss_note("the store phase");

    let mut levels = Vec::new();
    for &(clients, total) in &counts.levels {
        eprintln!("bench: creates at {clients} clients{q}");
        let r = phase_creates(&bench, clients, total).await;
        if let Err(e) = &r {
            all_ok = false;
            eprintln!("  FAILED: {e:#}");
        }
        levels.push((clients, r));
        rss_note(&format!("the creates at {clients} clients"));
    }
    for (clients, r) in &levels {
        let top = *clients == 64;
        match r {
            Ok(s) => {
                let (t1, t2) = if top { (">= 5000", "<= 50") } else { ("", "") };
                rep.row(
                    &format!("creates/s, {clients} clients"),
                    format!("{:.0}", s.per_s()),
                    t1,
                    top.then_some(s.per_s() >= 5000.0),
                );
                rep.row(
                    &format!("create p50 (ms), {clients} clients"),
                    f1(s.p(50.0)),
                    "",
                    None,
                );
                rep.row(
                    &format!("create p99 (ms), {clients} clients"),
                    f1(s.p(99.0)),
                    t2,
                    top.then_some(s.p(99.0) <= 50.0),
                );
            }
            Err(_) => rep.failed(
                &format!("creates/s, {clients} clients"),
                if top { ">= 5000" } else { "" },
            ),
        }
    }

    eprintln!(
        "bench: watch latency: {} watchers, {} creates{q}",
        counts.watchers, counts.watch_events
    );
    let watch = phase_watch(&bench, &counts).await;
    rss_note("the watch phase");
    match &watch {
        Ok(w) => {
            let p99 = pct_ms(&w.lats, 99.0);
            eprintln!(
                "  {} of {} events delivered; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (create p50 {:.2} ms)",
                w.lats.len(),
                w.expected,
                pct_ms(&w.lats, 50.0),
                p99,
                pct_ms(&w.lats, 100.0),
                w.create_p50
            );
            rep.row(
                &format!("watch delivery p50 (ms), {} watchers", counts.watchers),
                format!("{:.2}", pct_ms(&w.lats, 50.0)),
                "",
                None,
            );
            rep.row(
                &format!("watch delivery p99 (ms), {} watchers", counts.watchers),
                format!("{p99:.2}"),
                "<= 10",
                Some(p99 <= 10.0),
            );
            let missed = w.expected - w.lats.len();
            rep.row(
                "watch events missed",
                missed.to_string(),
                "0",
                Some(missed == 0),
            );
        }
        Err(e) => {
            all_ok = false;
            eprintln!("  FAILED: {e:#}");
            rep.failed("watch delivery p99 (ms)", "<= 10");
        }
    }

    eprintln!("bench: LIST of {} configmaps{q}", counts.list_items);
    let list = phase_list(&bench, &counts).await;
    rss_note("the LIST phase");
    match &list {
        Ok(l) => {
            eprintln!(
                "  10 lists of {} items ({:.2} MiB): median {:.1} ms, min {:.1} ms, max {:.1} ms",
                l.items, l.body_mb, l.median_ms, l.min_ms, l.max_ms
            );
            rep.row(
                &format!("LIST {} configmaps, median (ms)", counts.list_items),
                f1(l.median_ms),
                "<= 150",
                Some(l.median_ms <= 150.0),
            );
        }
        Err(e) => {
            all_ok = false;
            eprintln!("  FAILED: {e:#}");
            rep.failed(
                &format!("LIST {} configmaps, median (ms)", counts.list_items),
                "<= 150",
            );
        }
    }

    let patch_keys = patch_rows(&bench, pid, &counts, &mut rep, &mut all_ok, q, &rss_note).await;

    let (rss_after, rss_peak) = rss_mb(pid).unwrap_or((f64::NAN, f64::NAN));
    let anon_after = status_mb(pid, "RssAnon:").unwrap_or(f64::NAN);
    let file_after = status_mb(pid, "RssFile:").unwrap_or(f64::NAN);
    let cpu = cpu_secs(pid).unwrap_or(f64::NAN) - cpu_start;
    rep.row(
        "server RSS idle (MiB)",
        f1(idle_rss),
        "<= 30",
        Some(idle_rss <= 30.0),
    );
    rep.row("server RSS after the run (MiB)", f1(rss_after), "", None);
    rep.row(
        "  of which anonymous / file-backed",
        format!("{anon_after:.1} / {file_after:.1}"),
        "",
        None,
    );
    rep.row("server RSS peak (MiB)", f1(rss_peak), "", None);
    rep.row("server CPU during the run (s)", f1(cpu), "", None);
    let errors = bench.errors.count.load(Ordering::Relaxed);
    rep.row("request errors", errors.to_string(), "0", Some(errors == 0));

    let level = |c: usize| {
        levels
            .iter()
            .find(|(n, _)| *n == c)
            .and_then(|(_, r)| r.as_ref().ok())
    };
    let nan = f64::NAN;
    rep.key("creates_per_s_64", level(64).map_or(nan, RunStats::per_s));
    rep.key("p99_ms_64", level(64).map_or(nan, |s| s.p(99.0)));
    rep.key(
        "watch_p99_ms",
        watch.as_ref().map_or(nan, |w| pct_ms(&w.lats, 99.0)),
    );
    rep.key("list10k_ms", list.as_ref().map_or(nan, |l| l.median_ms));
    rep.key("idle_rss_mb", idle_rss);
    for c in [1, 16] {
        rep.key(
            &format!("creates_per_s_{c}"),
            level(c).map_or(nan, RunStats::per_s),
        );
        rep.key(&format!("p99_ms_{c}"), level(c).map_or(nan, |s| s.p(99.0)));
    }
    rep.key("p50_ms_64", level(64).map_or(nan, |s| s.p(50.0)));
    rep.key(
        "watch_p50_ms",
        watch.as_ref().map_or(nan, |w| pct_ms(&w.lats, 50.0)),
    );
    for (k, v) in store_keys {
        rep.key(k, v);
    }
    for (k, v) in patch_keys {
        rep.key(&k, v);
    }
    rep.key("rss_after_mb", rss_after);
    rep.key("rss_peak_mb", rss_peak);
    rep.key("rss_anon_after_mb", anon_after);
    rep.key("errors", errors as f64);
    rep.key("quick", if opts.quick { 1.0 } else { 0.0 });

    if errors > 0 {
        let samples = bench
            .errors
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        eprintln!("bench: {errors} request errors; the first ones:");
        for s in samples.iter() {
            eprintln!("  {s}");
        }
    }
    if let Some(status) = server.exited() {
        all_ok = false;
        eprintln!(
            "bench: the server exited during the run ({status}); last log lines:\n{}",
            log_tail(&layout.log, 30)
        );
    }
    rep.print();
    Ok(all_ok)
}

fn main() -> ExitCode {
    kone::identity::install_crypto_provider();
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_api: {e:#}");
            return ExitCode::from(2);
        }
    };
    match main_inner(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench_api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(opts: &Opts) -> Result<bool> {
    if !opts.kone.is_file() {
        bail!(
            "{} does not exist (build it with cargo build --release, or pass --kone PATH)",
            opts.kone.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("kone-bench-")
        .tempdir()
        .context("creating a temporary data dir")?;
    let layout = Layout::new(dir.path());
    let port = free_port()?;
    let token = format!(
        "bench{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    eprintln!(
        "bench: data dir {}, server log {}",
        layout.root.display(),
        layout.log.display()
    );
    // Spawned from the main thread, which lives as long as the benchmark
    // (PR_SET_PDEATHSIG fires when the spawning thread exits).
    let mut server = start_server(opts, &layout, port, &token)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async {
        tokio::select! {
            r = run(opts, &layout, &mut server, port, token) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    drop(rt);
    drop(server); // stop the server before its data dir goes away
    if result.is_err() {
        eprintln!(
            "bench: last server log lines:\n{}",
            log_tail(&layout.log, 20)
        );
    }
    if opts.keep || result.is_err() {
        let kept = dir.keep();
        eprintln!("bench: kept {}", kept.display());
    }
    result
}
