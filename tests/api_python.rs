//! The official Python client (pip `kubernetes`) against a real server.

mod common;

use common::{assert_ok, Server};

#[test]
fn python_client_crud_watch_and_errors() {
    let s = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_smoke.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&s.kubeconfig)
        .output()
        .expect("run python3");
    assert_ok(&out, "python client smoke test");
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client ok"));
}
