//! Streams through the API server to the node: `kubectl exec`, `attach`,
//! `cp` and `port-forward` with the real kubectl 1.33 (WebSockets, SPDY
//! tunnelled in a WebSocket for port-forward) and 1.27 (SPDY upgrades).
//! Each test's server lives in its own network namespace.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{kubectl_path, path_str, Server};

const VERSIONS: [Option<&str>; 2] = [Some("1.33"), Some("1.27")];

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    common::assert_ok(&out, manifest);
}

fn wait_running(s: &Server, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = s.kubectl(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
        if String::from_utf8_lossy(&out.stdout) == "Running" {
            return;
        }
        assert!(Instant::now() < deadline, "pod {name} not Running");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A pod on node1 running `script` in the test image.
fn pod(name: &str, script: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: node1
  restartPolicy: Never
  containers:
  - name: c
    image: kone.test/busybox:1
    command: ["sh", "-c", {script:?}]
{extra}"#
    )
}

/// `kubectl ARGS` run under `script`, so that kubectl has a terminal (of
/// the given size) as `-t` needs; returns what the terminal showed and the
/// exit code.
fn in_terminal(s: &Server, version: Option<&str>, args: &str, size: (u16, u16)) -> (String, i32) {
    let ns = s.netns.as_deref().expect("a node server");
    let line = format!(
        "stty rows {} cols {}; exec nsenter --net=/run/netns/{ns} env KUBECONFIG={} HOME={} {} {args}",
        size.0,
        size.1,
        path_str(&s.kubeconfig),
        path_str(s.dir.path()),
        path_str(&kubectl_path(version)),
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fails_with(out: &Output, message: &str) {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    let err = text(&out.stderr);
    assert!(err.contains(message), "{message:?} not in {err:?}");
}

#[test]
fn exec_propagates_exit_codes_streams_and_stdin() {
    let s = Server::start_node();
    apply(&s, &pod("p", "sleep 3600", ""));
    wait_running(&s, "p");
    for v in VERSIONS {
        // With a terminal: exit code and window size pass through.
        let (shown, code) = in_terminal(&s, v, "exec -it p -- sh -c 'exit 3'", (24, 80));
        assert_eq!(code, 3, "{v:?}: {shown}");
        let (shown, code) = in_terminal(
            &s,
            v,
            "exec -it p -- sh -c 'sleep 2; stty size; tty'",
            (45, 123),
        );
        assert_eq!(code, 0, "{v:?}: {shown}");
        assert!(shown.contains("45 123"), "{v:?}: {shown:?}");
        assert!(shown.contains("/dev/pts/"), "{v:?}: {shown:?}");

        // Without one: stdout and stderr apart, the exit code as kubectl's.
        let out = s.kubectl_v(
            v,
            &[
                "exec",
                "p",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 7",
            ],
        );
        assert_eq!(out.status.code(), Some(7), "{v:?}: {out:?}");
        assert_eq!(text(&out.stdout), "out\n");
        assert!(text(&out.stderr).starts_with("err\n"), "{v:?}: {out:?}");
        assert!(text(&out.stderr).contains("command terminated with exit code 7"));

        // stdin reaches the process and its end closes the process's stdin.
        let out = s.kubectl_stdin(
            v,
            &["exec", "-i", "p", "--", "sh", "-c", "cat; echo done"],
            "hi\n",
        );
        common::assert_ok(&out, v);
        assert_eq!(text(&out.stdout), "hi\ndone\n");

        // What a user can get wrong, answered as upstream does.
        let out = s.kubectl_v(v, &["exec", "p", "-c", "nope", "--", "true"]);
        fails_with(&out, "container nope is not valid for pod p");
        let out = s.kubectl_v(v, &["exec", "p", "--", "no-such-binary"]);
        fails_with(&out, "no-such-binary");
    }
    // A client that goes away leaves its command writing into a closed
    // pipe, which ends it (SIGPIPE), as under upstream runtimes.
    let mut gone = s
        .kubectl_cmd(None)
        .args([
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl exec");
    let mut first = String::new();
    BufReader::new(gone.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first tick");
    assert_eq!(first, "tick\n");
    let _ = gone.kill();
    let _ = gone.wait();
    common::wait_until(
        "the abandoned command ends",
        Duration::from_secs(30),
        || {
            let ps = s.kubectl(&["exec", "p", "--", "ps"]);
            ps.status.success() && !text(&ps.stdout).contains("echo tick")
        },
    );

    // The official Python client (WebSocket v5, and v4 when it asks).
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/stream_exec.py");
    let out = s
        .in_netns("python3")
        .args([script, path_str(&s.kubeconfig), "p"])
        .output()
        .expect("run python3");
    common::assert_ok(&out, "python exec");
    assert!(text(&out.stdout).contains("python stream ok"), "{out:?}");
    for transport in [
        "WebSocket(\"v5.channel.k8s.io\")",
        "WebSocket(\"v4.channel.k8s.io\")",
        "Spdy(\"v4.channel.k8s.io\")",
    ] {
        assert!(s.log().contains(transport), "no {transport} session");
    }

    apply(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: unbound}\nspec:\n  schedulerName: no-such-scheduler\n  containers: [{name: c, image: kone.test/busybox:1}]\n",
    );
    fails_with(
        &s.kubectl(&["exec", "unbound", "--", "true"]),
        "pod unbound does not have a host assigned",
    );
    apply(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: waiting}\nspec:\n  nodeName: node1\n  containers: [{name: c, image: kone.test/missing:1}]\n",
    );
    fails_with(
        &s.kubectl(&["exec", "waiting", "--", "true"]),
        "container not found (\"c\")",
    );
}

#[test]
fn cp_copies_files_in_and_out_unchanged() {
    let s = Server::start_node();
    apply(&s, &pod("p", "sleep 3600", ""));
    wait_running(&s, "p");
    // A few hundred KB of every byte value.
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let local = s.dir.path().join("in.bin");
    std::fs::write(&local, &data).expect("write the local file");
    for (i, v) in VERSIONS.into_iter().enumerate() {
        let remote = format!("p:/tmp/copy{i}.bin");
        common::assert_ok(&s.kubectl_v(v, &["cp", path_str(&local), &remote]), v);
        let sum = s.kubectl_v(
            v,
            &["exec", "p", "--", "wc", "-c", &format!("/tmp/copy{i}.bin")],
        );
        assert!(text(&sum.stdout).starts_with("300000 "), "{sum:?}");
        let back = s.dir.path().join(format!("out{i}.bin"));
        common::assert_ok(&s.kubectl_v(v, &["cp", &remote, path_str(&back)]), v);
        assert!(
            std::fs::read(&back).expect("copied back") == data,
            "{v:?}: bytes differ"
        );
    }
}

/// Lines a command prints, collected until `enough` holds or time is up;
/// the command is killed then.
fn read_lines(mut cmd: Command, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while !enough(&lines) && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn attach_streams_output_and_takes_stdin() {
    let s = Server::start_node();
    apply(
        &s,
        &pod(
            "ticker",
            "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done",
            "",
        ),
    );
    apply(
        &s,
        &pod(
            "reader",
            "read a; echo got-$a; read b; echo got-$b",
            "    stdin: true\n",
        ),
    );
    wait_running(&s, "ticker");
    wait_running(&s, "reader");
    for v in VERSIONS {
        let mut cmd = s.kubectl_cmd(v);
        cmd.args(["attach", "ticker"]);
        let lines = read_lines(cmd, |l| {
            l.iter().filter(|l| l.starts_with("tick-")).count() >= 3
        });
        let ticks: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("tick-")?.parse().ok())
            .collect();
        assert!(ticks.len() >= 3, "{v:?}: {lines:?}");
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{v:?}: {lines:?}"
        );
    }
    // Typed lines reach the container's stdin; the attach ends with it.
    let out = s.kubectl_stdin(Some("1.33"), &["attach", "-i", "reader"], "one\ntwo\n");
    common::assert_ok(&out, "attach -i");
    assert!(text(&out.stdout).contains("got-one\ngot-two\n"), "{out:?}");
}

#[test]
fn port_forward_reaches_a_pod_port() {
    let s = Server::start_node();
    apply(
        &s,
        &pod(
            "web",
            "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
            "",
        ),
    );
    wait_running(&s, "web");
    for (i, v) in VERSIONS.into_iter().enumerate() {
        let local = 18080 + i as u16;
        let mut pf = s
            .kubectl_cmd(v)
            .args(["port-forward", "pod/web", &format!("{local}:8080")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let mut ready = BufReader::new(pf.stdout.take().expect("stdout"));
        let mut first = String::new();
        ready.read_line(&mut first).expect("port-forward output");
        assert!(first.starts_with("Forwarding from"), "{v:?}: {first}");
        // Two requests: each local connection is its own stream pair.
        for _ in 0..2 {
            let out = s
                .in_netns("curl")
                .args(["-sS", "-m", "20", &format!("http://127.0.0.1:{local}/")])
                .output()
                .expect("curl");
            common::assert_ok(&out, v);
            assert_eq!(text(&out.stdout), "hello-from-pod\n", "{v:?}");
        }
        let _ = pf.kill();
        let _ = pf.wait();
    }
    // A closed port: the error reaches kubectl.
    let mut pf = s
        .kubectl_cmd(None)
        .args(["port-forward", "pod/web", "18090:9999"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let mut first = String::new();
    // Kept open: kubectl still writes to it ("Handling connection…").
    let mut progress = BufReader::new(pf.stdout.take().expect("stdout"));
    progress.read_line(&mut first).expect("port-forward output");
    let _ = s
        .in_netns("curl")
        .args(["-sS", "-m", "10", "http://127.0.0.1:18090/"])
        .output();
    // kubectl 1.33 ends the forward after an error; give it time, then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pf.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = pf.kill();
    drop(progress);
    let out = pf.wait_with_output().expect("port-forward output");
    assert!(
        text(&out.stderr).contains("error forwarding port 9999 to pod web"),
        "{out:?}"
    );
}
