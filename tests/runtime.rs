//! `kone runtime`: real containers on libcontainer under the per-pod
//! supervisor, with the project's busybox-static image imported from both
//! archive formats. Each test has its own data, run and log folders; its
//! pods get their own network namespaces, so tests run in parallel and
//! leave nothing behind (the guard removes every sandbox).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "kone.test/busybox:1";

/// Builds the test image archives once per test binary.
fn image_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-test-image");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-image.sh");
        let out = Command::new("bash").arg(script).arg(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "build-test-image.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A fresh data dir with the test image imported from `archive`.
    fn new(archive: &str) -> Node {
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = Command::new(env!("CARGO_BIN_EXE_kone"))
            .args(["images", "import"])
            .arg(image_dir().join(archive))
            .arg("--data-dir")
            .arg(node.data())
            .env("KONE_LOG", "warn")
            .output()
            .unwrap();
        ok(&out);
        node
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kone"));
        // Global flags first: `run` takes everything after the image as the command.
        cmd.arg("runtime")
            .arg("--data-dir")
            .arg(self.data())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(args)
            .env("KONE_LOG", "warn");
        cmd
    }

    fn rt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `kone runtime run -d …` → container id.
    fn run_detached(&self, extra: &[&str], command: &str) -> String {
        let logs = self.logs();
        let mut args = vec!["run", "-d", "--log-dir", logs.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sh", "-c", command]);
        ok(&self.rt(&args)).trim().to_string()
    }

    /// `kone runtime run --rm …` in the foreground.
    fn run_fg(&self, extra: &[&str], command: &str) -> Output {
        let logs = self.logs();
        let mut args = vec!["run", "--rm", "--log-dir", logs.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sh", "-c", command]);
        self.rt(&args)
    }

    fn inspect(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&ok(&self.rt(&["inspect", id]))).unwrap()
    }

    fn wait_exit(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.inspect(id);
            if s["status"] == "exited" {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not exit: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pods(&self) -> Vec<String> {
        std::fs::read_dir(self.run_dir().join("pods"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pod in self.pods() {
            let _ = self.rt(&["rmp", &pod]);
        }
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kone failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn echo_hello_from_both_archives_lands_in_the_cri_log() {
    for archive in ["busybox-docker.tar", "busybox-oci.tar"] {
        let node = Node::new(archive);
        let id = node.run_detached(&["--name", "greeter"], "echo hello; echo oops >&2");
        let state = node.wait_exit(&id);
        assert_eq!(state["exit_code"], 0, "{state}");
        assert_eq!(state["reason"], "Completed");
        let log_path = state["log_path"].as_str().unwrap();
        assert!(log_path.ends_with("/greeter/0.log"), "{log_path}");
        let log = std::fs::read_to_string(log_path).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        let stdout_line = lines.iter().find(|l| l.contains(" stdout ")).unwrap();
        let parts: Vec<&str> = stdout_line.splitn(4, ' ').collect();
        assert!(
            chrono::DateTime::parse_from_rfc3339(parts[0]).is_ok(),
            "{stdout_line}"
        );
        assert_eq!(&parts[1..], ["stdout", "F", "hello"]);
        assert!(lines.iter().any(|l| l.ends_with(" stderr F oops")), "{log}");
        // `logs` prints the content again, by stream.
        let out = node.rt(&["logs", &id]);
        assert_eq!(stdout(&out), "hello\n");
        assert_eq!(stderr(&out), "oops\n");
        // Remove: the container's layer and the sandbox go.
        ok(&node.rt(&["rm", &id]));
        assert!(!node.data().join("agent/containers").join(&id).exists());
        for pod in node.pods() {
            ok(&node.rt(&["rmp", &pod]));
        }
        assert!(node.pods().is_empty());
    }
}

#[test]
fn relative_dirs_are_taken_from_the_callers_directory() {
    let node = Node::new("busybox-docker.tar");
    // The supervisor daemonizes away from the caller's directory: relative
    // --data-dir/--run-dir must still find its socket and mounts afterwards.
    let out = Command::new(env!("CARGO_BIN_EXE_kone"))
        .current_dir(node.dir.path())
        .args(["runtime", "--data-dir", "data", "--run-dir", "run"])
        .args([
            "run",
            "--rm",
            "--log-dir",
            "logs",
            IMAGE,
            "sh",
            "-c",
            "echo hi; exit 7",
        ])
        .env("KONE_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    for pod in node.pods() {
        ok(&node.rt(&["rmp", &pod]));
    }
    assert!(node.pods().is_empty());
}

#[test]
fn limits_and_security_are_enforced() {
    let node = Node::new("busybox-oci.tar");
    // Memory: over the limit the process is OOM-killed and reported so.
    let id = node.run_detached(
        &["--memory", "16Mi"],
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    );
    let state = node.wait_exit(&id);
    assert_eq!(state["reason"], "OOMKilled", "{state}");
    assert_eq!(state["exit_code"], 137);

    // Pids: the sixth process cannot be forked.
    let out = node.run_fg(
        &["--pids-limit", "5"],
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("can't fork"), "{}", stderr(&out));

    // Read-only root filesystem.
    let out = node.run_fg(&["--read-only"], "touch /x");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(node.run_fg(&[], "touch /x").status.success());

    // A dropped capability is gone from the effective set and really denied.
    let out = node.run_fg(
        &["--cap-drop", "CHOWN"],
        "grep CapEff /proc/self/status; chown 1 /tmp",
    );
    assert!(!out.status.success());
    let eff = stdout(&out);
    let mask = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & 1, 0, "CAP_CHOWN still effective: {eff}");
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );

    // The default seccomp profile refuses unshare(2), which needs no
    // capability for a user namespace; unconfined allows it.
    let out = node.run_fg(&[], "unshare -U true");
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert!(node
        .run_fg(&["--seccomp", "unconfined"], "unshare -U true")
        .status
        .success());
}

#[test]
fn containers_of_one_sandbox_share_network_hostname_and_ipc() {
    let node = Node::new("busybox-oci.tar");
    let server = node.run_detached(
        &["--name", "server", "--hostname", "podhost"],
        "echo shared > /tmp/index.html; touch /dev/mqueue/q1; exec httpd -f -p 8080 -h /tmp",
    );
    let pods = node.pods();
    assert_eq!(pods.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = node.run_fg(
            &["--pod", &pods[0], "--name", "client"],
            "hostname; ls /dev/mqueue; wget -qO- http://127.0.0.1:8080/index.html",
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ok(&out), "podhost\nq1\nshared\n");
    // Another sandbox has its own network: the server is not on its localhost.
    let out = node.run_fg(&[], "wget -qO- -T 2 http://127.0.0.1:8080/index.html");
    assert!(!out.status.success());
    ok(&node.rt(&["stop", "-t", "1", &server]));
}

#[test]
fn exec_with_a_tty_and_stop_after_the_grace_period() {
    let node = Node::new("busybox-docker.tar");
    let id = node.run_detached(&[], "trap '' TERM; while true; do sleep 1; done");
    let out = node.rt(&["exec", "-t", &id, "sh", "-c", "tty; echo in-tty; exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(
        text.contains("in-tty\r\n"),
        "a terminal turns \\n into \\r\\n: {text:?}"
    );
    let out = node.rt(&["exec", &id, "sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("out\n", "err\n")
    );
    let mut child = node
        .cmd(&["exec", "-i", &id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "through stdin\n");

    // SIGTERM is ignored: SIGKILL comes after the 2 s grace period.
    let started = Instant::now();
    ok(&node.rt(&["stop", "-t", "2", &id]));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let state = node.inspect(&id);
    assert_eq!(state["exit_code"], 137, "{state}");
}

#[test]
fn containers_outlive_a_killed_caller_and_are_adopted_again() {
    let node = Node::new("busybox-oci.tar");
    let logs = node.logs();
    let mut callers: Vec<Child> = (0..3)
        .map(|i| {
            node.cmd(&[
                "run",
                "--log-dir",
                logs.to_str().unwrap(),
                "--name",
                &format!("c{i}"),
                IMAGE,
                "sh",
                "-c",
                "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let ids: Vec<String> = ok(&node.rt(&["ps", "-q"]))
            .lines()
            .map(String::from)
            .collect();
        if ids.len() == 3 || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ids.len(), 3);
    let before: Vec<serde_json::Value> = ids.iter().map(|id| node.inspect(id)).collect();
    for c in &mut callers {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(600));
    for (id, old) in ids.iter().zip(&before) {
        let now = node.inspect(id);
        assert_eq!(now["status"], "running", "{now}");
        assert_eq!(now["pid"], old["pid"], "the container was not restarted");
        assert_eq!(now["started_at"], old["started_at"]);
    }
    // A new caller streams a log that keeps growing, then stops them all.
    let count = |id: &str| stdout(&node.rt(&["logs", id])).lines().count();
    let first = count(&ids[0]);
    std::thread::sleep(Duration::from_millis(700));
    assert!(count(&ids[0]) > first, "the log stopped growing");
    let follow = node
        .cmd(&["logs", "-f", &ids[0]])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for id in &ids {
        ok(&node.rt(&["stop", "-t", "1", id]));
        assert_eq!(node.inspect(id)["status"], "exited");
    }
    // `logs -f` ends by itself once its container has exited.
    let out = follow.wait_with_output().unwrap();
    assert!(stdout(&out).lines().count() > first, "{}", stdout(&out));
}

#[test]
fn bad_images_give_clear_errors_and_leave_nothing() {
    let node = Node::new("busybox-oci.tar");
    let out = node.run_fg(&[], "true");
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = node.logs();
    let out = node.rt(&[
        "run",
        "--log-dir",
        logs.to_str().unwrap(),
        "kone.test/nothing:1",
        "true",
    ]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "kone runtime: image \"kone.test/nothing:1\" not found"
    );
    let out = node.rt(&[
        "run",
        "--log-dir",
        logs.to_str().unwrap(),
        IMAGE,
        "/no/such/binary",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kone runtime: creating the container"),
        "{}",
        stderr(&out)
    );
    assert!(node.pods().is_empty(), "sandboxes left: {:?}", node.pods());
    let left: Vec<_> = std::fs::read_dir(node.data().join("agent/containers"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container folders left: {left:?}");
    let out = node.rt(&["exec", "deadbeef", "true"]);
    assert_eq!(
        stderr(&out).trim(),
        "kone runtime: container \"deadbeef\" not found"
    );
}

#[test]
fn image_gc_keeps_the_layers_of_existing_containers() {
    let node = Node::new("busybox-oci.tar");
    let id = node.run_detached(&[], "sleep 1000");
    let images = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kone"))
            .arg("images")
            .args(args)
            .arg("--data-dir")
            .arg(node.data())
            .env("KONE_LOG", "warn")
            .output()
            .unwrap()
    };
    let snapshots = || {
        std::fs::read_dir(node.data().join("agent/snapshots"))
            .unwrap()
            .count()
    };
    assert_eq!(snapshots(), 1);
    ok(&images(&["rm", IMAGE]));
    ok(&images(&["gc"]));
    assert_eq!(
        snapshots(),
        1,
        "gc removed a snapshot a container is made of"
    );
    // The container still runs programs from its (now unnamed) layers.
    let out = node.rt(&["exec", &id, "busybox", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&node.rt(&["rm", "-f", &id]));
    ok(&images(&["gc"]));
    let left = std::fs::read_dir(node.data().join("agent/snapshots"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the snapshot outlived its last container");
}
