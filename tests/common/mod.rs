//! Test harness: a real `kone server` on a free port with its own data dir,
//! and the real kubectl pointed at it.
#![allow(dead_code)]

pub mod images;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A bearer token every test server accepts (from its --token-auth-file).
pub const TEST_TOKEN: &str = "kone-test-token-0123456789";

pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    extra_env: Vec<(String, String)>,
    /// With a node: the network namespace the server (and everything it
    /// runs, and every kubectl of the test) lives in.
    pub netns: Option<String>,
    /// Whether a server in a network namespace runs its own node.
    own_node: bool,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The kubectl of a given minor version ("1.33", "1.27"), or the one on PATH.
pub fn kubectl_path(version: Option<&str>) -> PathBuf {
    let Some(v) = version else {
        return PathBuf::from("kubectl");
    };
    let on_path = which("kubectl").expect("kubectl on PATH");
    let real = std::fs::canonicalize(&on_path).expect("resolve kubectl");
    let p = real
        .parent()
        .expect("kubectl dir")
        .join(format!("kubectl.{v}"));
    assert!(p.exists(), "{} is missing", p.display());
    p
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())
    })
}

impl Server {
    pub fn start() -> Server {
        Self::start_with_env(&[])
    }

    /// Start with extra environment variables for the server process.
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.yaml"), "").expect("config");
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{TEST_TOKEN},test-user,1000,\"developers,testers\"\n"),
        )
        .expect("token file");
        let mut s = Server {
            child: None,
            port: free_port(),
            kubeconfig: dir.path().join("kubeconfig.yaml"),
            dir,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            netns: None,
            own_node: false,
        };
        s.spawn();
        s
    }

    /// A server with its node, alone in a new network namespace (a veth
    /// pair inside it gives it a default route), with the project's test
    /// image in its airgap folder.
    pub fn start_node() -> Server {
        Self::start_in_netns(true, &[])
    }

    /// A node server (see [`Server::start_node`]) with extra environment
    /// variables for the server process.
    pub fn start_node_with_env(env: &[(&str, &str)]) -> Server {
        Self::start_in_netns(true, env)
    }

    /// A control plane alone (`--disable-agent`) in its own network
    /// namespace, set up like `start_node`, for `kone agent`s to join.
    pub fn start_node_without_agent() -> Server {
        Self::start_in_netns(false, &[])
    }

    fn start_in_netns(own_node: bool, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.yaml"), "").expect("config");
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{TEST_TOKEN},test-user,1000,\"developers,testers\"\n"),
        )
        .expect("token file");
        let images = dir.path().join("data/agent/images");
        std::fs::create_dir_all(&images).expect("airgap dir");
        let archive = images::test_image_dir().join("busybox-oci.tar");
        std::fs::copy(&archive, images.join("busybox-oci.tar")).expect("copy test image");
        let name = format!(
            "kone-t-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        netns_setup(&name);
        let mut s = Server {
            child: None,
            port: 6443,
            kubeconfig: dir.path().join("kubeconfig.yaml"),
            dir,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            netns: Some(name),
            own_node,
        };
        s.spawn();
        s
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn pod_log_dir(&self) -> PathBuf {
        self.dir.path().join("pods")
    }

    /// A command run inside the node's network namespace (if any).
    pub fn in_netns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let mut cmd = self.in_netns(env!("CARGO_BIN_EXE_kone"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--https-listen-port")
            .arg(self.port.to_string())
            .arg("--write-kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--token-auth-file")
            .arg(self.dir.path().join("tokens.csv"))
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .env("KONE_LOG", "kone=debug,info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if self.netns.is_some() && !self.own_node {
            cmd.arg("--disable-agent");
        } else if self.netns.is_some() {
            node_ops_env(&mut cmd);
            cmd.arg("--node-name")
                .arg("node1")
                .arg("--run-dir")
                .arg(self.run_dir())
                .arg("--pod-log-dir")
                .arg(self.pod_log_dir());
        } else {
            cmd.arg("--bind-address")
                .arg("127.0.0.1")
                .arg("--disable-agent");
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn kone server"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("kone server exited early ({status}):\n{}", self.log());
                }
            }
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready in 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kone agent` joining this server as `node` with `token`, in the
    /// server's network namespace, sharing its data, run and log folders
    /// (so the test image is there and the pods are cleaned up with the
    /// server's). Its log goes to agent.log.
    pub fn spawn_agent(&self, node: &str, token: &str) -> Agent {
        self.spawn_agent_with(
            node,
            token,
            [self.data_dir(), self.run_dir(), self.pod_log_dir()],
            &self.dir.path().join("agent.log"),
        )
    }

    /// `kone agent` as another machine in the same network namespace runs
    /// it: data, run and pod-log folders of its own under `root`, its log
    /// at `root/agent.log`. It has no test image, so it is for nodes that
    /// run no pods.
    pub fn spawn_other_agent(&self, node: &str, token: &str, root: &Path) -> Agent {
        std::fs::create_dir_all(root).expect("the other agent's folder");
        self.spawn_agent_with(
            node,
            token,
            [root.join("data"), root.join("run"), root.join("pods")],
            &root.join("agent.log"),
        )
    }

    fn spawn_agent_with(&self, node: &str, token: &str, dirs: [PathBuf; 3], log: &Path) -> Agent {
        let [data, run, pod_logs] = dirs;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("agent log file");
        let mut cmd = self.in_netns(env!("CARGO_BIN_EXE_kone"));
        cmd.arg("agent")
            .arg("--server")
            .arg(format!("https://127.0.0.1:{}", self.port))
            .arg("--token")
            .arg(token)
            .arg("--node-name")
            .arg(node)
            .arg("--data-dir")
            .arg(data)
            .arg("--run-dir")
            .arg(run)
            .arg("--pod-log-dir")
            .arg(pod_logs)
            .env("KONE_LOG", "kone=debug,info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        node_ops_env(&mut cmd);
        Agent(cmd.spawn().expect("spawn kone agent"))
    }

    /// The server's full join token, as `cat <data-dir>/server/token` shows it.
    pub fn join_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("server/token"))
            .expect("server token")
            .trim()
            .to_string()
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// SIGKILL the server, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop (SIGKILL) and start again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Start again after [`Server::kill9`], on the same data dir and port.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn kubectl_cmd(&self, version: Option<&str>) -> Command {
        let mut c = self.in_netns(kubectl_path(version));
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_v(None, args)
    }

    pub fn kubectl_v(&self, version: Option<&str>, args: &[&str]) -> Output {
        self.kubectl_cmd(version)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// kubectl with a manifest on stdin.
    pub fn kubectl_stdin(&self, version: Option<&str>, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(version)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_ok(&out, args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A raw HTTPS client trusting this server's CA, with no credentials.
    pub fn http(&self) -> reqwest::Client {
        kone::identity::install_crypto_provider();
        let ca = self.data_dir().join("server/tls/server-ca.crt");
        let pem = std::fs::read(&ca).expect("read server CA");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
            .build()
            .expect("http client")
    }
}

/// A `kone agent` process, killed when dropped (declare it after its
/// server, so it goes first).
pub struct Agent(pub Child);

impl Agent {
    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Test machines often have less than 10 % of their disk free: upstream's
/// nodefs threshold and image GC watermarks would evict the tests' pods and
/// delete their image. Tests of those set their own values (a server's
/// extra_env comes after).
fn node_ops_env(cmd: &mut Command) {
    cmd.env("KONE_EVICTION_HARD", "memory.available<100Mi")
        .env("KONE_IMAGE_GC_HIGH_THRESHOLD", "100");
}

pub fn assert_ok(out: &Output, what: impl std::fmt::Debug) {
    assert!(
        out.status.success(),
        "{what:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(ns) = self.netns.take() {
            // Pods outlive the server by design: remove them, then the netns.
            let _ = Command::new(env!("CARGO_BIN_EXE_kone"))
                .args(["runtime", "--run-dir"])
                .arg(self.run_dir())
                .arg("--data-dir")
                .arg(self.data_dir())
                .arg("rmp")
                .args(pod_ids(&self.run_dir()))
                .env("KONE_LOG", "error")
                .output();
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- kone server log ({}) ----\n{}",
                self.dir.path().display(),
                tail(&self.log(), 200)
            );
            let agent = self.agent_log();
            if !agent.is_empty() {
                eprintln!("---- kone agent log ----\n{}", tail(&agent, 200));
            }
        }
    }
}

fn pod_ids(run_dir: &Path) -> Vec<String> {
    std::fs::read_dir(run_dir.join("pods"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A network namespace with loopback up and a default route through a
/// veth pair that lives entirely inside it.
fn netns_setup(name: &str) {
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["netns", "add", name]);
    ip(&["-n", name, "link", "set", "lo", "up"]);
    ip(&[
        "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", name, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    ip(&["-n", name, "link", "set", "eth0", "up"]);
    ip(&["-n", name, "link", "set", "eth0p", "up"]);
    ip(&["-n", name, "route", "add", "default", "via", "10.99.0.1"]);
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Command output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
