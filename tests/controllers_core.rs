//! Core controllers of `kone server`: namespace defaults (default
//! ServiceAccount, kube-root-ca.crt), endpoints and node lifecycle.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get_json(s: &Server, args: &[&str]) -> Option<Value> {
    let out = s.kubectl(args);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let s = Server::start();
    let ca = std::fs::read_to_string(s.data_dir().join("server/tls/server-ca.crt")).expect("CA");
    s.ok(&["create", "namespace", "team-a"]);
    let sa = |s: &Server| {
        get_json(
            s,
            &[
                "get",
                "serviceaccount",
                "default",
                "-n",
                "team-a",
                "-o",
                "json",
            ],
        )
    };
    let cm = |s: &Server| {
        get_json(
            s,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                "team-a",
                "-o",
                "json",
            ],
        )
    };
    wait_for("default ServiceAccount", Duration::from_secs(20), || sa(&s));
    let got = wait_for("kube-root-ca.crt", Duration::from_secs(20), || cm(&s));
    assert_eq!(got["data"]["ca.crt"].as_str(), Some(ca.as_str()));
    // Also in the namespaces a fresh cluster has.
    for ns in ["default", "kube-system"] {
        wait_for(ns, Duration::from_secs(20), || {
            get_json(
                &s,
                &[
                    "get",
                    "configmap",
                    "kube-root-ca.crt",
                    "-n",
                    ns,
                    "-o",
                    "json",
                ],
            )
        });
    }
    // Deleted: put back. Changed: set right again.
    let old_uid = sa(&s).expect("sa")["metadata"]["uid"].clone();
    s.ok(&["delete", "serviceaccount", "default", "-n", "team-a"]);
    wait_for(
        "default ServiceAccount again",
        Duration::from_secs(20),
        || sa(&s).filter(|o| o["metadata"]["uid"] != old_uid),
    );
    s.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"bogus"}}"#,
    ]);
    wait_for("kube-root-ca.crt restored", Duration::from_secs(20), || {
        cm(&s).filter(|o| o["data"]["ca.crt"].as_str() == Some(ca.as_str()))
    });
}
