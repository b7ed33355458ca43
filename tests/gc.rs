//! Garbage collection through ownerReferences, driven with kubectl 1.33 and
//! 1.27: background, orphan and foreground cascades, dangling references.
//!
//! Owners are ReplicaSets with zero replicas and dependents are unscheduled
//! pods whose references are not controller references, so no workload
//! controller touches them and only the collector acts.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{assert_ok, wait_until, Server};

const VERSIONS: [&str; 2] = ["1.33", "1.27"];
const WAIT: Duration = Duration::from_secs(60);

fn owner_manifest(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{owner: {name}}}}}
  template:
    metadata: {{labels: {{owner: {name}}}}}
    spec: {{containers: [{{name: c, image: busybox}}]}}
"#
    )
}

fn apply(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(None, &["apply", "-f", "-"], manifest);
    assert_ok(&out, manifest);
}

fn get(s: &Server, args: &[&str]) -> Output {
    s.kubectl(&[&["get"], args].concat())
}

fn exists(s: &Server, kind: &str, name: &str) -> bool {
    get(s, &[kind, name, "-o", "name"]).status.success()
}

fn uid(s: &Server, kind: &str, name: &str) -> String {
    s.ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
}

/// A pod owned by the named ReplicaSets (uid given), not scheduled anywhere.
fn dependent(name: &str, owners: &[(&str, &str)], block: bool, finalizer: bool) -> String {
    let refs: Vec<String> = owners
        .iter()
        .map(|(n, u)| {
            format!("{{apiVersion: apps/v1, kind: ReplicaSet, name: {n}, uid: \"{u}\", blockOwnerDeletion: {block}}}")
        })
        .collect();
    let fin = if finalizer {
        "finalizers: [example.com/hold]"
    } else {
        "finalizers: []"
    };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  {fin}
  ownerReferences: [{}]
spec: {{containers: [{{name: c, image: busybox}}]}}
"#,
        refs.join(", ")
    )
}

#[test]
fn background_cascade_deletes_dependents() {
    let s = Server::start();
    for v in VERSIONS {
        let owner = format!("bg-{}", v.replace('.', ""));
        apply(&s, &owner_manifest(&owner));
        let u = uid(&s, "rs", &owner);
        let pod = format!("{owner}-pod");
        apply(&s, &dependent(&pod, &[(&owner, &u)], false, false));
        assert_ok(
            &s.kubectl_v(Some(v), &["delete", "rs", &owner, "--cascade=background"]),
            "delete",
        );
        wait_until("dependent pod deleted", WAIT, || !exists(&s, "pod", &pod));
    }
}

#[test]
fn orphan_cascade_keeps_dependents_and_strips_references() {
    let s = Server::start();
    for v in VERSIONS {
        let owner = format!("orphan-{}", v.replace('.', ""));
        apply(&s, &owner_manifest(&owner));
        let u = uid(&s, "rs", &owner);
        let pod = format!("{owner}-pod");
        apply(&s, &dependent(&pod, &[(&owner, &u)], true, false));
        assert_ok(
            &s.kubectl_v(Some(v), &["delete", "rs", &owner, "--cascade=orphan"]),
            "delete",
        );
        wait_until("owner gone", WAIT, || !exists(&s, "rs", &owner));
        let refs = s.ok(&[
            "get",
            "pod",
            &pod,
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ]);
        assert!(refs.trim().is_empty() || refs.trim() == "[]", "{refs}");
        // Long enough for a wrong collector to act; the pod must stay.
        std::thread::sleep(Duration::from_secs(2));
        assert!(exists(&s, "pod", &pod));
    }
}

#[test]
fn foreground_cascade_waits_for_blocking_dependents() {
    let s = Server::start();
    for v in VERSIONS {
        let owner = format!("fg-{}", v.replace('.', ""));
        apply(&s, &owner_manifest(&owner));
        let u = uid(&s, "rs", &owner);
        let pod = format!("{owner}-pod");
        apply(&s, &dependent(&pod, &[(&owner, &u)], true, true));
        assert_ok(
            &s.kubectl_v(
                Some(v),
                &[
                    "delete",
                    "rs",
                    &owner,
                    "--cascade=foreground",
                    "--wait=false",
                ],
            ),
            "delete",
        );
        wait_until("dependent marked for deletion", WAIT, || {
            let stamp = s.ok(&[
                "get",
                "pod",
                &pod,
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ]);
            !stamp.trim().is_empty()
        });
        let fin = s.ok(&["get", "rs", &owner, "-o", "jsonpath={.metadata.finalizers}"]);
        assert!(fin.contains("foregroundDeletion"), "{fin}");
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            exists(&s, "rs", &owner),
            "owner must wait for its dependent"
        );
        s.ok(&[
            "patch",
            "pod",
            &pod,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        wait_until("owner deleted after its dependent", WAIT, || {
            !exists(&s, "rs", &owner) && !exists(&s, "pod", &pod)
        });
    }
}

/// A Secret owned by a ConfigMap: neither kind is one a built-in
/// controller owns, so the collector must follow them all the same.
fn secret_owned_by(name: &str, owner: &str, owner_uid: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: {name}
  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: "{owner_uid}", blockOwnerDeletion: true}}]
stringData: {{k: v}}
"#
    )
}

#[test]
fn owners_and_dependents_of_any_kind_are_collected() {
    let s = Server::start();
    for cascade in ["background", "foreground", "orphan"] {
        let owner = format!("cm-{cascade}");
        let dep = format!("{owner}-secret");
        s.ok(&["create", "configmap", &owner]);
        let u = uid(&s, "configmap", &owner);
        apply(&s, &secret_owned_by(&dep, &owner, &u));
        assert_ok(
            &s.kubectl(&[
                "delete",
                "configmap",
                &owner,
                &format!("--cascade={cascade}"),
                "--timeout=60s",
            ]),
            cascade,
        );
        wait_until("owner gone", WAIT, || !exists(&s, "configmap", &owner));
        if cascade == "orphan" {
            std::thread::sleep(Duration::from_secs(2));
            assert!(exists(&s, "secret", &dep), "orphaned secret must stay");
            let refs = s.ok(&[
                "get",
                "secret",
                &dep,
                "-o",
                "jsonpath={.metadata.ownerReferences}",
            ]);
            assert!(refs.trim().is_empty() || refs.trim() == "[]", "{refs}");
        } else {
            wait_until("dependent secret deleted", WAIT, || {
                !exists(&s, "secret", &dep)
            });
        }
    }
}

#[test]
fn dangling_references_are_collected() {
    let s = Server::start();
    let ghost = "00000000-0000-0000-0000-000000000001";
    // Its only owner never existed: deleted.
    apply(&s, &dependent("lonely", &[("ghost", ghost)], false, false));
    wait_until("orphaned dependent deleted", WAIT, || {
        !exists(&s, "pod", "lonely")
    });
    // One owner of two is gone: only that reference goes.
    apply(&s, &owner_manifest("alive"));
    let u = uid(&s, "rs", "alive");
    apply(
        &s,
        &dependent("shared", &[("alive", &u), ("ghost", ghost)], false, false),
    );
    wait_until("dangling reference dropped", WAIT, || {
        s.ok(&[
            "get",
            "pod",
            "shared",
            "-o",
            "jsonpath={.metadata.ownerReferences[*].name}",
        ])
        .trim()
            == "alive"
    });
    assert!(exists(&s, "pod", "shared"));
}

#[test]
fn delete_options_validate_the_policy() {
    let s = Server::start();
    apply(&s, &owner_manifest("opts"));
    let out = s.kubectl(&[
        "delete",
        "--raw",
        "/apis/apps/v1/namespaces/default/replicasets/opts?propagationPolicy=Sideways",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unsupported value"), "{err}");
    assert!(exists(&s, "rs", "opts"));
}
