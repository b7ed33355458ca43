//! One pod's worker: brings the runtime in line with the pod (sandbox, init
//! containers in order, app containers with restart policy and back-off),
//! writes the status when it changes, and on deletion stops the containers
//! within the grace period, removes the sandbox and then the pod object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::container::{self, Context};
use super::events::EventType;
use super::exits::ExitWatch;
use super::probes::{Prober, Verdicts};
use super::status::{self, Observed, PodFailure, Waiting};
use super::volumes;
use super::{etcfiles, fsgroup, hooks, podcgroup, Kubelet};
use crate::runtime::containers::{ContainerDesc, SandboxDesc};
use crate::runtime::shim::client::ShimClient;
use crate::runtime::shim::protocol::{ContainerState, Status};

#[derive(Clone)]
pub enum PodUpdate {
    Pod(Arc<Pod>),
    /// The pod object is gone from the API.
    Gone,
}

/// How often a pod in flux is re-checked without news from the API
/// (back-off expiry, probes, containers being started).
const RESYNC: Duration = Duration::from_secs(1);
/// How often volumes are prepared again (configMap, secret and token
/// contents); a settled pod is looked at no more often than that.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);

struct Worker {
    k: Arc<Kubelet>,
    uid: String,
    shim: Option<ShimClient>,
    pod_ip: Option<String>,
    start_time: String,
    restart_backoff: HashMap<String, Backoff>,
    restart_at: HashMap<String, Instant>,
    pull_backoff: HashMap<String, (Backoff, Instant)>,
    waiting: HashMap<String, Waiting>,
    image_ids: HashMap<String, String>,
    volumes: Option<(HashMap<String, std::path::PathBuf>, Instant)>,
    /// The volumes were prepared once (fsGroup then owns the emptyDirs).
    volumes_ready: bool,
    last_status: Option<Value>,
    failure: Option<PodFailure>,
    prober: Prober,
    /// The pod's QoS class: its resources cannot change, so it is computed once.
    qos: String,
    exits: ExitWatch,
    /// The last sync left nothing that a timer must bring about (see
    /// `nothing_due`): exits, pod updates and evictions wake the worker.
    settled: bool,
}

pub async fn run(k: Arc<Kubelet>, mut rx: watch::Receiver<PodUpdate>) {
    let mut w: Option<Worker> = None;
    let (exit_tx, mut exited) = mpsc::unbounded_channel();
    let mut evictions = k.evictions.subscribe();
    loop {
        let update = rx.borrow_and_update().clone();
        let done = match update {
            PodUpdate::Pod(pod) => {
                let worker = w.get_or_insert_with(|| Worker::new(k.clone(), &pod, exit_tx.clone()));
                match worker.sync(&pod).await {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::warn!(pod = %name(&pod), error = %format!("{e:#}"), "pod sync failed");
                        false
                    }
                }
            }
            PodUpdate::Gone => {
                if let Some(worker) = &mut w {
                    worker.teardown(None, 0).await;
                }
                true
            }
        };
        if done {
            return;
        }
        // Our own status writes come back as updates; only a change of what
        // the pod asks for is worth syncing before the next tick.
        let seen = wanted(&rx.borrow());
        let pod = update_pod(&rx.borrow());
        let wait = match (&w, pod) {
            (Some(w), Some(pod)) => w.next_sync(&pod),
            _ => RESYNC,
        };
        let tick = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if wanted(&rx.borrow()) != seen {
                        break;
                    }
                }
                Some(()) = exited.recv() => break,
                Ok(()) = evictions.changed() => break,
                _ = tokio::time::sleep_until(tick) => break,
            }
        }
    }
}

fn update_pod(update: &PodUpdate) -> Option<Arc<Pod>> {
    match update {
        PodUpdate::Pod(p) => Some(p.clone()),
        PodUpdate::Gone => None,
    }
}

/// The parts of a pod update that call for acting on it now.
fn wanted(update: &PodUpdate) -> Option<Value> {
    match update {
        PodUpdate::Gone => None,
        PodUpdate::Pod(p) => Some(json!([
            p.metadata.generation,
            p.metadata.deletion_timestamp,
            p.metadata.labels,
            p.metadata.annotations,
            p.spec,
        ])),
    }
}

fn name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Runs a blocking runtime call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Worker {
    fn new(k: Arc<Kubelet>, pod: &Pod, exited: mpsc::UnboundedSender<()>) -> Worker {
        Worker {
            k,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            shim: None,
            pod_ip: None,
            start_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            restart_backoff: HashMap::new(),
            restart_at: HashMap::new(),
            pull_backoff: HashMap::new(),
            waiting: HashMap::new(),
            image_ids: HashMap::new(),
            volumes: None,
            volumes_ready: false,
            last_status: None,
            failure: None,
            prober: Prober::default(),
            qos: qos_class(pod),
            exits: ExitWatch::new(exited),
            settled: false,
        }
    }

    /// How long the worker may sleep after a sync, barring news.
    fn next_sync(&self, pod: &Pod) -> Duration {
        if !self.settled {
            return RESYNC;
        }
        match self.deadline_in(pod) {
            Some(left) => left.clamp(RESYNC, VOLUME_REFRESH),
            None => VOLUME_REFRESH,
        }
    }

    /// Whether, after a sync that saw `states`, only an event or the volume
    /// refresh can call for work: the pod has failed or finished, or every
    /// app container (and sidecar) runs or is done for good under the
    /// restart policy, with nothing waiting and no probe to run.
    fn nothing_due(&self, pod: &Pod, states: &[ContainerState]) -> bool {
        if self.failure.is_some()
            || matches!(status::phase(pod, states, false), "Succeeded" | "Failed")
        {
            return true;
        }
        let Some(spec) = pod.spec.as_ref() else {
            return false;
        };
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        let probed = all_containers(pod).iter().any(|c| {
            c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
        });
        if probed || !self.waiting.is_empty() || self.volumes.is_none() {
            return false;
        }
        let mut sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c));
        let sidecars_run = sidecars.all(|c| {
            status::runs(states, &c.name)
                .0
                .is_some_and(|l| l.status == Status::Running)
        });
        sidecars_run
            && spec
                .containers
                .iter()
                .all(|c| match status::runs(states, &c.name).0 {
                    Some(l) if l.status == Status::Running => true,
                    Some(l) if l.status == Status::Exited => {
                        policy == "Never" || (policy == "OnFailure" && l.exit_code == Some(0))
                    }
                    _ => false,
                })
    }

    /// One pass; true once the pod is finished with for good.
    async fn sync(&mut self, pod: &Pod) -> anyhow::Result<bool> {
        self.settled = false;
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            self.teardown(Some(pod), grace).await;
            self.delete_object(pod).await?;
            return Ok(true);
        }
        if let Some(st) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
            self.start_time = st.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        let shim = self.ensure_sandbox(pod).await?;
        let states = {
            let s = shim.clone();
            blocking(move || s.list()).await?
        };
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        );
        if !terminal && self.failure.is_none() && self.past_deadline(pod) {
            tracing::info!(pod = %name(pod), "activeDeadlineSeconds passed; stopping the pod");
            self.failure = Some(PodFailure::Deadline);
            self.k.events.pod(
                pod,
                EventType::Normal,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline".into(),
            );
            let grace = termination_grace(pod);
            self.stop_all(Some(pod), &shim, grace).await;
        }
        if !terminal && self.failure.is_none() {
            if let Some(message) = self.k.evictions.take(&self.uid) {
                self.k
                    .events
                    .pod(pod, EventType::Warning, "Evicted", message.clone());
                self.failure = Some(PodFailure::Evicted(message));
                // Hard thresholds allow no grace period, as upstream.
                self.stop_all(Some(pod), &shim, 0).await;
            }
        }
        if !terminal && self.failure.is_none() {
            self.refresh_volumes(pod).await;
            self.run_containers(pod, &shim, &states).await;
            self.probe(pod, &shim, &states).await;
        }
        let states = {
            let s = shim.clone();
            blocking(move || s.list()).await?
        };
        self.write_status(pod, &states).await?;
        self.exits.follow(&shim, &states);
        self.settled = self.nothing_due(pod, &states);
        Ok(false)
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> anyhow::Result<ShimClient> {
        if let Some(s) = &self.shim {
            return Ok(s.clone());
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let parent = podcgroup::path(&self.qos, &self.uid);
        let limits = podcgroup::limits(&spec, &self.qos, self.k.cfg.node_ops.pod_max_pids);
        let cgroup = parent.clone();
        blocking(move || podcgroup::apply(&cgroup, &limits))
            .await
            .map_err(|e| e.context("setting up the pod cgroup"))?;
        let desc = SandboxDesc {
            id: self.uid.clone(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            uid: self.uid.clone(),
            hostname: etcfiles::hostname(pod),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc: spec.host_ipc.unwrap_or(false),
            host_pid: spec.host_pid.unwrap_or(false),
            cgroup_parent: parent,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
        };
        let rt = self.k.runtime.clone();
        let shim = blocking(move || rt.run_sandbox(&desc)).await?;
        if spec.host_network.unwrap_or(false) {
            self.pod_ip = Some(self.k.cfg.node_ip.to_string());
        } else {
            let s = shim.clone();
            let info = blocking(move || s.info()).await?;
            let netns = info
                .netns
                .ok_or_else(|| anyhow::anyhow!("the sandbox has no network namespace"))?;
            match self.k.network.setup(&self.uid, &netns).await {
                Ok(ip) => self.pod_ip = Some(ip.to_string()),
                Err(e) => {
                    // Undo the half-done setup; the next sync tries again.
                    let _ = self.k.network.teardown(&self.uid).await;
                    return Err(e.context("setting up the pod network"));
                }
            }
        }
        self.shim = Some(shim.clone());
        Ok(shim)
    }

    async fn refresh_volumes(&mut self, pod: &Pod) {
        if self
            .volumes
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < VOLUME_REFRESH)
        {
            return;
        }
        let dir = self.k.cfg.pod_dir(&self.uid);
        match volumes::prepare(&self.k.client, pod, &dir).await {
            Ok(v) => {
                let first = !self.volumes_ready;
                let (p, vols) = (pod.clone(), v.clone());
                let owned = blocking(move || Ok(fsgroup::apply(&p, &vols, first)?)).await;
                if let Err(e) = owned {
                    tracing::warn!(pod = %name(pod), error = %format!("{e:#}"), "applying fsGroup to volumes");
                }
                self.volumes_ready = true;
                self.volumes = Some((v, Instant::now()));
            }
            Err(e) => {
                tracing::debug!(pod = %name(pod), error = %e, "volumes not ready");
                self.volumes = None;
                for c in all_containers(pod) {
                    self.fail(pod, &c, "CreateContainerConfigError", &e.0);
                }
            }
        }
    }

    /// Init containers in order, then the app containers. Sidecars (init
    /// containers with restartPolicy Always) start in their turn, the next
    /// init container once they have started, and are kept running until
    /// the app containers are done for good.
    async fn run_containers(&mut self, pod: &Pod, shim: &ShimClient, states: &[ContainerState]) {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        if matches!(status::phase(pod, states, false), "Succeeded" | "Failed") {
            self.stop_sidecars(pod, shim, states).await;
            return;
        }
        let apps_begun = spec
            .containers
            .iter()
            .any(|c| status::runs(states, &c.name).0.is_some());
        for c in spec.init_containers.clone().unwrap_or_default() {
            let (latest, _) = status::runs(states, &c.name);
            if is_sidecar(&c) {
                let up = match latest {
                    None => {
                        self.start(pod, shim, &c, 0).await;
                        false
                    }
                    Some(l) if l.status == Status::Exited => {
                        self.restart(pod, shim, &c, l).await;
                        // One that ran (with no startup probe to pass) has
                        // let the pod go on; its crash loop does not hold it.
                        l.started_at.is_some() && c.startup_probe.is_none()
                    }
                    Some(l) => l.status == Status::Running && self.prober.started(&c, &l.id),
                };
                if !up && !apps_begun {
                    return;
                }
                continue;
            }
            if apps_begun {
                continue;
            }
            match latest {
                Some(l) if l.status == Status::Exited && l.exit_code == Some(0) => continue,
                Some(l) if l.status == Status::Exited => {
                    if policy == "Never" {
                        self.failure = Some(PodFailure::Init);
                        return;
                    }
                    self.restart(pod, shim, &c, l).await;
                    return;
                }
                Some(_) => return,
                None => {
                    self.start(pod, shim, &c, 0).await;
                    return;
                }
            }
        }
        for c in &spec.containers {
            let (latest, _) = status::runs(states, &c.name);
            match latest {
                None => self.start(pod, shim, c, 0).await,
                Some(l) if l.status == Status::Created => {
                    let (s, id) = (shim.clone(), l.id.clone());
                    if let Err(e) = blocking(move || s.start(&id)).await {
                        self.fail(pod, c, "RunContainerError", &format!("{e:#}"));
                    }
                }
                Some(l) if l.status == Status::Exited => {
                    let again =
                        policy == "Always" || (policy == "OnFailure" && l.exit_code != Some(0));
                    if again {
                        self.restart(pod, shim, c, l).await;
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Sets why a container waits; true when that is news.
    fn set_waiting(&mut self, c: &Container, reason: &str, message: &str) -> bool {
        let w = Waiting {
            reason: reason.into(),
            message: message.into(),
        };
        let news = self.waiting.get(&c.name) != Some(&w);
        self.waiting.insert(c.name.clone(), w);
        news
    }

    /// A container that cannot start: waiting with `reason`, and, the first
    /// time, upstream's `Failed` event (the reason alone for image errors,
    /// whose message had its own event).
    fn fail(&mut self, pod: &Pod, c: &Container, reason: &str, message: &str) {
        if self.set_waiting(c, reason, message) {
            let what = if reason.contains("Image") {
                reason
            } else {
                message
            };
            self.k.events.container(
                pod,
                c,
                EventType::Warning,
                "Failed",
                format!("Error: {what}"),
            );
        }
    }

    /// A new attempt after the back-off, keeping the previous run for
    /// `logs --previous` and removing older ones.
    async fn restart(
        &mut self,
        pod: &Pod,
        shim: &ShimClient,
        c: &Container,
        last: &ContainerState,
    ) {
        let now = Instant::now();
        let (due, fresh) = match self.restart_at.get(&last.id) {
            Some(at) => (*at, false),
            None => {
                let at = self
                    .restart_backoff
                    .entry(c.name.clone())
                    .or_default()
                    .fail(now);
                self.restart_at.insert(last.id.clone(), at);
                (at, true)
            }
        };
        if now < due {
            let delay = self
                .restart_backoff
                .get(&c.name)
                .map(|b| b.delay())
                .unwrap_or_default();
            let msg = format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                delay.as_secs(),
                c.name,
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                self.uid
            );
            self.set_waiting(c, "CrashLoopBackOff", &msg);
            if fresh {
                self.k.events.container(
                    pod,
                    c,
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        c.name,
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    ),
                );
            }
            return;
        }
        let s = shim.clone();
        let (name, keep) = (c.name.clone(), last.id.clone());
        let cleanup = blocking(move || {
            for old in s.list()? {
                if old.name == name && old.id != keep && old.status == Status::Exited {
                    s.delete(&old.id)?;
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = cleanup {
            tracing::warn!(error = %format!("{e:#}"), "removing old container runs");
        }
        self.start(pod, shim, c, last.attempt + 1).await;
    }

    async fn start(&mut self, pod: &Pod, shim: &ShimClient, c: &Container, attempt: u32) {
        if !self.ensure_image(pod, c).await {
            return;
        }
        let Some((vols, _)) = &self.volumes else {
            return;
        };
        let dir = self.k.cfg.pod_dir(&self.uid);
        let etc = match etcfiles::write(&dir, pod, &self.k.cfg, self.pod_ip.as_deref()) {
            Ok(e) => e,
            Err(e) => {
                self.fail(pod, c, "CreateContainerConfigError", &e.to_string());
                return;
            }
        };
        let qos = self.qos.clone();
        let cx = Context {
            cfg: &self.k.cfg,
            client: &self.k.client,
            pod,
            pod_ip: self.pod_ip.as_deref(),
            volumes: vols,
            etc: &etc,
            qos: &qos,
        };
        let desc = match container::describe(&cx, c, attempt).await {
            Ok(d) => d,
            Err(e) => {
                self.fail(pod, c, "CreateContainerConfigError", &e.0);
                return;
            }
        };
        if container::requires_non_root(pod, c) {
            match self.k.runtime.identity(&desc) {
                Ok(id) if id.uid == 0 => {
                    let msg = format!(
                        "container has runAsNonRoot and image will run as root (pod: \"{}_{}({})\", container: {})",
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid,
                        c.name
                    );
                    self.fail(pod, c, "CreateContainerConfigError", &msg);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.fail(pod, c, "CreateContainerConfigError", &format!("{e:#}"));
                    return;
                }
            }
        }
        self.create_and_start(pod, shim, c, desc).await;
    }

    async fn create_and_start(
        &mut self,
        pod: &Pod,
        shim: &ShimClient,
        c: &Container,
        desc: ContainerDesc,
    ) {
        let (rt, s) = (self.k.runtime.clone(), shim.clone());
        let created = blocking(move || rt.create(&s, &desc)).await;
        let state = match created {
            Ok(st) => st,
            Err(e) => {
                self.fail(pod, c, "CreateContainerError", &format!("{e:#}"));
                return;
            }
        };
        self.k.events.container(
            pod,
            c,
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        let (s, id) = (shim.clone(), state.id.clone());
        match blocking(move || s.start(&id)).await {
            Ok(_) => {
                self.waiting.remove(&c.name);
                self.k.events.container(
                    pod,
                    c,
                    EventType::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                tracing::info!(container = %c.name, id = %state.id, attempt = state.attempt, "started container");
            }
            Err(e) => {
                self.fail(pod, c, "RunContainerError", &format!("{e:#}"));
                return;
            }
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let limit = Duration::from_secs(30);
            if let Err(msg) = hooks::run(
                &self.k,
                shim,
                self.pod_ip.as_deref(),
                c,
                &state.id,
                h,
                limit,
            )
            .await
            {
                tracing::warn!(container = %c.name, error = %msg, "postStart hook failed; killing the container");
                self.k.events.container(
                    pod,
                    c,
                    EventType::Warning,
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {msg}"),
                );
                let (s, id) = (shim.clone(), state.id.clone());
                let _ = blocking(move || s.stop(&id, 0, None)).await;
            }
        }
    }

    /// Pulls per imagePullPolicy; false (with a waiting reason) while the
    /// image is not there.
    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> bool {
        let image = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let store = self.k.runtime.images().clone();
        let present = {
            let name = image.clone();
            blocking(move || store.get(&crate::runtime::images::store::resolve_name(&name)?)).await
        };
        let record = match present {
            Ok(r) => r,
            Err(e) => {
                self.fail(pod, c, "InvalidImageName", &format!("{e:#}"));
                return false;
            }
        };
        if let Some(r) = &record {
            if policy != "Always" {
                self.k.events.container(
                    pod,
                    c,
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                self.image_ids
                    .insert(c.name.clone(), format!("{}@{}", r.name, r.digest.as_str()));
                return true;
            }
        }
        if policy == "Never" {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            if self.set_waiting(c, "ErrImageNeverPull", &msg) {
                self.k
                    .events
                    .container(pod, c, EventType::Warning, "ErrImageNeverPull", msg);
            }
            return false;
        }
        if let Some((_, until)) = self.pull_backoff.get(&c.name) {
            if Instant::now() < *until {
                let message = self
                    .waiting
                    .get(&c.name)
                    .map(|w| w.message.clone())
                    .unwrap_or_default();
                if self.set_waiting(c, "ImagePullBackOff", &message) {
                    self.k.events.container(
                        pod,
                        c,
                        EventType::Normal,
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    );
                    self.k.events.container(
                        pod,
                        c,
                        EventType::Warning,
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                    );
                }
                return false;
            }
        }
        self.k.events.container(
            pod,
            c,
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let began = Instant::now();
        let auth = pull_secret(&self.k.client, pod, &image).await;
        match self.k.puller.pull(&image, auth).await {
            Ok(r) => {
                let took = began.elapsed();
                self.k.events.container(
                    pod,
                    c,
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting). Image size: {} bytes.",
                        r.size
                    ),
                );
                self.pull_backoff.remove(&c.name);
                self.image_ids
                    .insert(c.name.clone(), format!("{}@{}", r.name, r.digest.as_str()));
                true
            }
            Err(e) => {
                let now = Instant::now();
                let entry = self
                    .pull_backoff
                    .entry(c.name.clone())
                    .or_insert((Backoff::default(), now));
                entry.0.fail(now);
                // Even the first retry of a pull waits, as upstream.
                entry.1 = now + entry.0.delay().max(Duration::from_secs(10));
                let msg = format!("Failed to pull image \"{image}\": {e:#}");
                tracing::warn!(container = %c.name, error = %msg, "image pull failed");
                self.k
                    .events
                    .container(pod, c, EventType::Warning, "Failed", msg.clone());
                // Each attempt's failure is news, even with the same message.
                self.waiting.remove(&c.name);
                self.fail(pod, c, "ErrImagePull", &msg);
                false
            }
        }
    }

    /// Probes the running containers; a failed liveness or startup probe
    /// stops the container (in the background), and the restart policy
    /// brings it back.
    async fn probe(&mut self, pod: &Pod, shim: &ShimClient, states: &[ContainerState]) {
        self.prober.retain(states);
        let mut verdicts = Verdicts::default();
        for c in all_containers(pod) {
            let (latest, _) = status::runs(states, &c.name);
            let Some(run) = latest.filter(|l| l.status == Status::Running) else {
                continue;
            };
            self.prober
                .round(
                    &self.k,
                    shim,
                    self.pod_ip.as_deref(),
                    &c,
                    run,
                    &mut verdicts,
                )
                .await;
        }
        let containers = all_containers(pod);
        for (name, type_, reason, message) in verdicts.events {
            if let Some(c) = containers.iter().find(|c| c.name == name) {
                self.k.events.container(pod, c, type_, reason, message);
            }
        }
        let grace = termination_grace(pod);
        for (id, why) in verdicts.kill {
            let s = shim.clone();
            tokio::spawn(async move {
                if let Err(e) = blocking(move || s.stop(&id, grace, None)).await {
                    tracing::warn!(error = %format!("{e:#}"), reason = %why, "stopping a container");
                }
            });
        }
    }

    async fn write_status(&mut self, pod: &Pod, states: &[ContainerState]) -> anyhow::Result<()> {
        let qos = self.qos.clone();
        let messages = termination_messages(&self.k.cfg.pod_dir(&self.uid), states);
        // A running container clears whatever kept it waiting before.
        for s in states.iter().filter(|s| s.status == Status::Running) {
            self.waiting.remove(&s.name);
        }
        let mut ready = HashMap::new();
        let mut started = HashMap::new();
        for c in all_containers(pod) {
            if let (Some(run), _) = status::runs(states, &c.name) {
                ready.insert(c.name.clone(), self.prober.ready(&c, &run.id));
                started.insert(c.name.clone(), self.prober.started(&c, &run.id));
            }
        }
        let host_ip = self.k.cfg.node_ip.to_string();
        let observed = Observed {
            pod,
            states,
            waiting: &self.waiting,
            ready: &ready,
            started: &started,
            messages: &messages,
            image_ids: &self.image_ids,
            pod_ip: self.pod_ip.as_deref(),
            host_ip: &host_ip,
            start_time: &self.start_time,
            sandbox_ready: self.shim.is_some(),
            qos: &qos,
        };
        let new = status::compute(&observed, self.failure.as_ref());
        let fp = status::fingerprint(&new);
        if self.last_status.as_ref() == Some(&fp) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.k.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = json!({"status": new});
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        self.last_status = Some(fp);
        Ok(())
    }

    /// Stops every container within `grace` seconds (SIGTERM, then SIGKILL),
    /// then removes the sandbox and the pod's files.
    async fn teardown(&mut self, pod: Option<&Pod>, grace: u64) {
        tracing::info!(pod = %self.uid, grace, "stopping the pod");
        let shim = match &self.shim {
            Some(s) => Some(s.clone()),
            None => {
                let (rt, uid) = (self.k.runtime.clone(), self.uid.clone());
                blocking(move || rt.sandbox(&uid)).await.ok()
            }
        };
        if let Some(shim) = shim {
            let running = {
                let s = shim.clone();
                blocking(move || s.list()).await.unwrap_or_default()
            };
            let running: Vec<ContainerState> = running
                .into_iter()
                .filter(|c| c.status != Status::Exited)
                .collect();
            let started = Instant::now();
            if let Some(pod) = pod {
                for c in all_containers(pod) {
                    if running.iter().any(|r| r.name == c.name) {
                        self.k.events.container(
                            pod,
                            &c,
                            EventType::Normal,
                            "Killing",
                            format!("Stopping container {}", c.name),
                        );
                    }
                }
                self.pre_stop(pod, &shim, &running, grace).await;
            }
            // The hooks used part of the grace period.
            let left = grace.saturating_sub(started.elapsed().as_secs());
            self.stop_all(pod, &shim, left).await;
            if let Err(e) = blocking(move || shim.shutdown()).await {
                tracing::warn!(error = %format!("{e:#}"), "removing the sandbox");
            }
        }
        if let Err(e) = self.k.network.teardown(&self.uid).await {
            tracing::warn!(error = %format!("{e:#}"), "releasing the pod network");
        }
        let dir = self.k.cfg.pod_dir(&self.uid);
        let _ = blocking(move || {
            volumes::cleanup(&dir);
            Ok(())
        })
        .await;
        self.shim = None;
    }

    fn past_deadline(&self, pod: &Pod) -> bool {
        self.deadline_in(pod).is_some_and(|left| left.is_zero())
    }

    /// Time left before activeDeadlineSeconds, if the pod has one.
    fn deadline_in(&self, pod: &Pod) -> Option<Duration> {
        let limit = pod.spec.as_ref()?.active_deadline_seconds?;
        let start = chrono::DateTime::parse_from_rfc3339(&self.start_time).ok()?;
        let elapsed = chrono::Utc::now()
            .signed_duration_since(start)
            .num_seconds();
        Some(Duration::from_secs(
            limit.saturating_sub(elapsed).max(0) as u64
        ))
    }

    /// Stops every running container of the sandbox within `grace` seconds:
    /// the others first, then the pod's sidecars, which serve them.
    async fn stop_all(&self, pod: Option<&Pod>, shim: &ShimClient, grace: u64) {
        let started = Instant::now();
        let s = shim.clone();
        let running = blocking(move || s.list()).await.unwrap_or_default();
        let sidecars: Vec<String> = pod
            .map(all_containers)
            .unwrap_or_default()
            .into_iter()
            .filter(is_sidecar)
            .map(|c| c.name)
            .collect();
        let (last, first): (Vec<ContainerState>, Vec<ContainerState>) = running
            .into_iter()
            .filter(|c| c.status != Status::Exited)
            .partition(|c| sidecars.contains(&c.name));
        for group in [first, last] {
            let left = grace.saturating_sub(started.elapsed().as_secs());
            let stops = group.into_iter().map(|c| {
                let s = shim.clone();
                blocking(move || s.stop(&c.id, left, None))
            });
            for r in futures::future::join_all(stops).await {
                if let Err(e) = r {
                    tracing::warn!(error = %format!("{e:#}"), "stopping a container");
                }
            }
        }
    }

    /// Once the app containers are done for good, the sidecars stop too,
    /// the last started first.
    async fn stop_sidecars(&self, pod: &Pod, shim: &ShimClient, states: &[ContainerState]) {
        let grace = termination_grace(pod);
        let inits = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default();
        for c in inits.iter().rev().filter(|c| is_sidecar(c)) {
            let (latest, _) = status::runs(states, &c.name);
            let Some(run) = latest.filter(|l| l.status != Status::Exited) else {
                continue;
            };
            self.k.events.container(
                pod,
                c,
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
            let (s, id) = (shim.clone(), run.id.clone());
            if let Err(e) = blocking(move || s.stop(&id, grace, None)).await {
                tracing::warn!(error = %format!("{e:#}"), "stopping a sidecar");
            }
        }
    }

    /// Every running container's preStop hook, concurrently, within the grace period.
    async fn pre_stop(&self, pod: &Pod, shim: &ShimClient, running: &[ContainerState], grace: u64) {
        let limit = Duration::from_secs(grace);
        let containers = all_containers(pod);
        let hooks = running.iter().filter_map(|r| {
            let c = containers.iter().find(|c| c.name == r.name)?;
            let h = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
            Some(async move {
                if let Err(msg) =
                    hooks::run(&self.k, shim, self.pod_ip.as_deref(), c, &r.id, h, limit).await
                {
                    tracing::warn!(container = %c.name, error = %msg, "preStop hook failed");
                    self.k.events.container(
                        pod,
                        c,
                        EventType::Warning,
                        "FailedPreStopHook",
                        format!("PreStopHook failed: {msg}"),
                    );
                }
            })
        });
        futures::future::join_all(hooks).await;
    }

    /// The final delete the kubelet makes once everything is stopped.
    async fn delete_object(&self, pod: &Pod) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(
            self.k.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn termination_grace(pod: &Pod) -> u64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0) as u64
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn all_containers(pod: &Pod) -> Vec<Container> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut all = spec.init_containers.unwrap_or_default();
    all.extend(spec.containers);
    all
}

pub fn qos_class(pod: &Pod) -> String {
    let v = serde_json::to_value(pod).unwrap_or_default();
    crate::apiserver::admission::qos::pod_qos_class(&v).to_string()
}

/// What each exited container wrote to its terminationMessagePath.
fn termination_messages(
    pod_dir: &std::path::Path,
    states: &[ContainerState],
) -> HashMap<String, String> {
    states
        .iter()
        .filter(|s| s.status == Status::Exited)
        .filter_map(|s| {
            let file = pod_dir
                .join("containers")
                .join(&s.name)
                .join(format!("{}-termination-log", s.attempt));
            let text = std::fs::read_to_string(file).ok()?;
            Some((s.id.clone(), text.chars().take(4096).collect()))
        })
        .collect()
}

/// Credentials from the pod's imagePullSecrets for the image's registry.
async fn pull_secret(
    client: &kube::Client,
    pod: &Pod,
    image: &str,
) -> Option<crate::runtime::images::Credentials> {
    let names = pod.spec.as_ref()?.image_pull_secrets.clone()?;
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let host = crate::runtime::images::store::resolve_name(image)
        .ok()?
        .split('/')
        .next()?
        .to_string();
    for r in names {
        let Ok(Some(secret)) = api.get_opt(&r.name).await else {
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let Some(raw) = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
        else {
            continue;
        };
        let Ok(cfg) = serde_json::from_slice::<Value>(&raw.0) else {
            continue;
        };
        let auths = cfg.get("auths").unwrap_or(&cfg);
        let Some(obj) = auths.as_object() else {
            continue;
        };
        for (server, entry) in obj {
            let server = server
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let server = server.split('/').next().unwrap_or_default();
            let matches = server == host || (host == "docker.io" && server == "index.docker.io");
            if !matches {
                continue;
            }
            let (mut user, mut pass) = (
                entry["username"].as_str().unwrap_or_default().to_string(),
                entry["password"].as_str().unwrap_or_default().to_string(),
            );
            if let Some(auth) = entry["auth"].as_str() {
                use base64::Engine;
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(auth) {
                    if let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                        user = u.to_string();
                        pass = p.to_string();
                    }
                }
            }
            return Some(crate::runtime::images::Credentials {
                username: user,
                password: pass,
            });
        }
    }
    None
}
