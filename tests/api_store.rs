//! The store behind the API, driven by real clients against the real binary:
//! watch order and resourceVersions, compaction and 410 Expired, optimistic
//! concurrency, durability under `kill -9`, restart, and authentication.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, TEST_TOKEN};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

fn rv_num(rv: Option<&String>) -> u64 {
    let rv = rv.expect("object has a resourceVersion");
    rv.parse::<u64>()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} is not an integer"))
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    c
}

fn cm_labeled(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let mut c = cm(name, data);
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    c
}

fn data_of(c: &ConfigMap, key: &str) -> Option<String> {
    c.data.as_ref().and_then(|d| d.get(key).cloned())
}

/// Next item of a stream, failing the test after `secs` seconds.
async fn next_within<S, T>(s: &mut S, secs: u64, what: &str) -> T
where
    S: Stream<Item = T> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(secs), s.next()).await {
        Ok(Some(x)) => x,
        Ok(None) => panic!("stream ended while waiting for {what}"),
        Err(_) => panic!("timed out after {secs} s waiting for {what}"),
    }
}

/// Next message of a channel, failing the test after `secs` seconds.
async fn recv_within<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    secs: u64,
    what: &str,
) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), rx.recv()).await {
        Ok(Some(x)) => x,
        Ok(None) => panic!("channel closed while waiting for {what}"),
        Err(_) => panic!("timed out after {secs} s waiting for {what}"),
    }
}

/// Run blocking harness calls (start/kill/restart) without starving tokio.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Read newline-delimited JSON watch events from a raw HTTP response until
/// `want` lines have arrived or `secs` seconds pass.
async fn read_watch_lines(resp: &mut reqwest::Response, want: usize, secs: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while out.len() < want {
        let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {text}"));
            out.push(v);
        }
    }
    out
}

fn assert_expired_status(s: &Value, what: &str) {
    assert_eq!(s["kind"], "Status", "{what}: not a Status: {s}");
    assert_eq!(s["code"], 410, "{what}: want code 410: {s}");
    assert_eq!(s["reason"], "Expired", "{what}: want reason Expired: {s}");
    assert_eq!(s["status"], "Failure", "{what}: want status Failure: {s}");
}

// ---------------------------------------------------------------- 1. watcher

#[tokio::test(flavor = "multi_thread")]
async fn watcher_sees_create_update_delete_in_order() {
    let server = blocking(Server::start);
    let watch_client = server.client().await;
    let write_client = server.client().await;

    let api: Api<ConfigMap> = Api::namespaced(watch_client, "default");
    let mut w = watcher(api, watcher::Config::default()).boxed();

    // The initial list: Init, any InitApply, InitDone.
    match next_within(&mut w, 10, "watcher Init").await {
        Ok(watcher::Event::Init) => {}
        other => panic!("first watcher event should be Init, got {other:?}"),
    }
    loop {
        match next_within(&mut w, 10, "watcher InitDone").await {
            Ok(watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::InitDone) => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }

    let writer: Api<ConfigMap> = Api::namespaced(write_client, "default");
    let created = writer
        .create(&PostParams::default(), &cm("w1", &[("step", "1")]))
        .await
        .expect("create w1");
    let mut upd = created.clone();
    upd.data = Some([("step".to_string(), "2".to_string())].into());
    let updated = writer
        .replace("w1", &PostParams::default(), &upd)
        .await
        .expect("update w1");
    writer
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete w1");

    let rv_created = rv_num(created.metadata.resource_version.as_ref());
    let rv_updated = rv_num(updated.metadata.resource_version.as_ref());
    assert!(
        rv_updated > rv_created,
        "update rv {rv_updated} <= create rv {rv_created}"
    );

    // Collect events for w1 until its Delete.
    let mut seen: Vec<(&'static str, u64, Option<String>)> = Vec::new();
    loop {
        let ev = next_within(&mut w, 10, "w1 events").await;
        match ev {
            Ok(watcher::Event::Apply(o)) if o.name_any() == "w1" => {
                seen.push((
                    "apply",
                    rv_num(o.metadata.resource_version.as_ref()),
                    data_of(&o, "step"),
                ));
            }
            Ok(watcher::Event::Delete(o)) if o.name_any() == "w1" => {
                seen.push((
                    "delete",
                    rv_num(o.metadata.resource_version.as_ref()),
                    data_of(&o, "step"),
                ));
                break;
            }
            Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::Delete(_)) => {}
            other => {
                panic!("unexpected watcher event after InitDone: {other:?} (seen so far {seen:?})")
            }
        }
    }

    assert_eq!(
        seen.len(),
        3,
        "want exactly apply, apply, delete for w1; got {seen:?}"
    );
    assert_eq!(seen[0].0, "apply");
    assert_eq!(
        seen[0].1, rv_created,
        "create event rv vs create response: {seen:?}"
    );
    assert_eq!(seen[0].2.as_deref(), Some("1"));
    assert_eq!(seen[1].0, "apply");
    assert_eq!(
        seen[1].1, rv_updated,
        "update event rv vs update response: {seen:?}"
    );
    assert_eq!(seen[1].2.as_deref(), Some("2"));
    assert_eq!(seen[2].0, "delete");
    assert!(
        seen[2].1 > rv_updated,
        "delete event rv {} must be greater than the update rv {rv_updated}",
        seen[2].1
    );
}

// ---------------------------------------------------------------- 2. compaction and 410

#[tokio::test(flavor = "multi_thread")]
async fn compaction_gives_410_and_watcher_relists() {
    let server = blocking(|| {
        Server::start_with_env(&[
            ("KONE_COMPACT_INTERVAL_SECS", "1"),
            ("KONE_COMPACT_KEEP_REVISIONS", "10"),
            ("KONE_COMPACT_KEEP_SECS", "0"),
        ])
    });
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let seed = api
        .create(&PostParams::default(), &cm("seed", &[("n", "0")]))
        .await
        .expect("create seed");
    let old_rv = seed.metadata.resource_version.clone().expect("seed rv");
    let old = rv_num(Some(&old_rv));

    // A watcher on a selector that none of the writes below match, with a
    // 1 s server timeout and no bookmarks: it keeps re-watching from its
    // list resourceVersion, which compaction will overtake.
    let quiet_cfg = watcher::Config::default()
        .labels("kone-test=quiet")
        .timeout(1)
        .disable_bookmarks();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let quiet_api: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
    let forward = tokio::spawn(async move {
        let mut w = watcher(quiet_api, quiet_cfg).boxed();
        while let Some(ev) = w.next().await {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    match recv_within(&mut rx, 10, "quiet watcher Init").await {
        Ok(watcher::Event::Init) => {}
        other => panic!("quiet watcher: first event should be Init, got {other:?}"),
    }
    match recv_within(&mut rx, 10, "quiet watcher InitDone").await {
        Ok(watcher::Event::InitDone) => {}
        other => panic!("quiet watcher: want InitDone on an empty list, got {other:?}"),
    }

    // ~200 writes: 4 writers x 50 merge patches.
    let mut writers = Vec::new();
    for t in 0..4 {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            let name = format!("churn-{t}");
            api.create(&PostParams::default(), &cm(&name, &[("n", "0")]))
                .await
                .expect("create churn");
            for i in 1..=50 {
                let p = json!({"data": {"n": i.to_string()}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                    .await
                    .expect("patch churn");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer task");
    }
    let head = rv_num(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .metadata
            .resource_version
            .as_ref(),
    );
    assert!(
        head >= old + 200,
        "head rv {head} should be >= old {old} + 200"
    );

    // LIST at the old revision, Exact: must turn into 410 once compacted.
    let http = server.http();
    let list_url = format!(
        "{}/api/v1/namespaces/default/configmaps?resourceVersion={old_rv}&resourceVersionMatch=Exact",
        server.url()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        let resp = http
            .get(&list_url)
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .expect("list exact");
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if code != 200 || Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        code, 410,
        "GET configmaps?resourceVersion={old_rv}&resourceVersionMatch=Exact after compaction \
         (interval 1 s, keep 10 revisions, head {head}): want 410, got {code}: {body}"
    );
    assert_expired_status(&body, "list Exact at a compacted rv");

    // Raw watch from the compacted revision.
    let watch_url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}",
        server.url()
    );
    {
        let mut resp = http
            .get(&watch_url)
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .expect("raw watch");
        match resp.status().as_u16() {
            410 => {
                let body: Value = resp.json().await.expect("410 body");
                assert_expired_status(&body, "raw watch HTTP 410");
            }
            200 => {
                let lines = read_watch_lines(&mut resp, 1, 5).await;
                let first = lines.first().unwrap_or_else(|| {
                    panic!("raw watch at compacted rv {old_rv}: 200 but no event within 5 s")
                });
                assert_eq!(
                    first["type"], "ERROR",
                    "raw watch at compacted rv: first event {first}"
                );
                assert_expired_status(&first["object"], "raw watch ERROR event");
            }
            other => {
                panic!(
                    "raw watch at compacted rv {old_rv}: want 410 or 200+ERROR, got HTTP {other}"
                )
            }
        }
    }

    // kube-rs Api::watch from the compacted revision: upstream sends a 200
    // and an ERROR event with a 410 Status (kube-rs only relists on that).
    match api.watch(&WatchParams::default(), &old_rv).await {
        Ok(stream) => {
            let mut stream = stream.boxed();
            match next_within(&mut stream, 5, "kube-rs watch at compacted rv").await {
                Ok(WatchEvent::Error(e)) => {
                    assert_eq!(e.code, 410, "kube-rs WatchEvent::Error: {e:?}");
                    assert_eq!(e.reason, "Expired", "kube-rs WatchEvent::Error: {e:?}");
                }
                other => panic!("kube-rs watch at compacted rv {old_rv}: want WatchEvent::Error(410), got {other:?}"),
            }
        }
        Err(e) => panic!(
            "kube-rs Api::watch at compacted rv {old_rv} failed at the request ({e}); upstream answers 200 \
             with an ERROR event carrying the 410 Status, and kube-rs watcher only relists on that form"
        ),
    }

    // The quiet watcher must have hit the 410 on a reconnect and relisted.
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut saw_410 = false;
    loop {
        let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("quiet watcher stream ended"),
            Err(_) => panic!(
                "quiet watcher did not relist within 15 s after compaction; errors seen: {:?}",
                errors.iter().take(5).collect::<Vec<_>>()
            ),
        };
        match ev {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_410 = true,
            Err(e) => errors.push(format!("{e:?}")),
            Ok(watcher::Event::Init) => {
                assert!(
                    saw_410,
                    "quiet watcher relisted without a 410 WatchError first; errors: {errors:?}"
                );
                break;
            }
            Ok(other) => panic!("quiet watcher: unexpected event before relist: {other:?}"),
        }
    }
    match recv_within(&mut rx, 10, "quiet watcher InitDone after relist").await {
        Ok(watcher::Event::InitDone) => {}
        other => panic!("quiet watcher: want InitDone after relist, got {other:?}"),
    }

    // And it keeps delivering new events.
    let made = api
        .create(
            &PostParams::default(),
            &cm_labeled("after", &[("kone-test", "quiet")], &[("x", "1")]),
        )
        .await
        .expect("create after");
    loop {
        match recv_within(&mut rx, 10, "quiet watcher Apply(after)").await {
            Ok(watcher::Event::Apply(o)) => {
                assert_eq!(o.name_any(), "after");
                assert_eq!(o.metadata.resource_version, made.metadata.resource_version);
                break;
            }
            // A timeout-driven reconnect that races with compaction may
            // legitimately relist again (Init/InitDone with the object).
            Ok(watcher::Event::Init) | Ok(watcher::Event::InitDone) => {}
            Ok(watcher::Event::InitApply(o)) if o.name_any() == "after" => break,
            Err(watcher::Error::WatchError(s)) if s.code == 410 => {}
            other => panic!("quiet watcher: want Apply(after), got {other:?}"),
        }
    }
    forward.abort();
}

// ---------------------------------------------------------------- 3. optimistic concurrency

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_read_modify_write_loses_no_update() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 20;
    let server = blocking(Server::start);
    let api: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
    api.create(&PostParams::default(), &cm("counter", &[("n", "0")]))
        .await
        .expect("create counter");

    let success_rvs = Arc::new(Mutex::new(Vec::<u64>::new()));
    let conflicts = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let api: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
        let success_rvs = success_rvs.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let mut cur = api.get("counter").await.expect("GET counter");
                let n: u64 = data_of(&cur, "n")
                    .expect("n")
                    .parse()
                    .expect("n is a number");
                cur.data = Some([("n".to_string(), (n + 1).to_string())].into());
                match api.replace("counter", &PostParams::default(), &cur).await {
                    Ok(o) => success_rvs
                        .lock()
                        .unwrap()
                        .push(rv_num(o.metadata.resource_version.as_ref())),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        assert_eq!(s.reason, "Conflict", "409 with the wrong reason: {s:?}");
                        *conflicts.lock().unwrap() += 1;
                    }
                    Err(e) => panic!("PUT counter: want 200 or 409 Conflict, got {e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let rvs = success_rvs.lock().unwrap().clone();
    let successes = rvs.len();
    let conflicts = *conflicts.lock().unwrap();
    eprintln!("read-modify-write: {successes} successes, {conflicts} conflicts");
    assert_eq!(
        successes + conflicts,
        CLIENTS * ROUNDS,
        "every attempt is a success or a 409"
    );
    assert!(successes >= 1, "no PUT succeeded");

    let fin = api.get("counter").await.expect("final GET");
    let n: usize = data_of(&fin, "n").expect("n").parse().expect("number");
    assert_eq!(
        n, successes,
        "lost update: counter is {n} but {successes} PUTs succeeded ({conflicts} conflicts)"
    );
    let unique: HashSet<u64> = rvs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        successes,
        "two successful PUTs returned the same resourceVersion"
    );
    assert_eq!(
        rv_num(fin.metadata.resource_version.as_ref()),
        *rvs.iter().max().unwrap(),
        "final resourceVersion should be the last successful write's"
    );
}

// ---------------------------------------------------------------- 4. durability under kill -9

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill9() {
    const WRITERS: usize = 16;
    let mut server = blocking(Server::start);
    let http = server.http();
    let url = format!("{}/api/v1/namespaces/default/configmaps", server.url());

    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let (http, url, stop, created, unexpected) = (
            http.clone(),
            url.clone(),
            stop.clone(),
            created.clone(),
            unexpected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("d-{t}-{i}");
                let body = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {"i": i.to_string()}
                });
                let resp = match http
                    .post(&url)
                    .bearer_auth(TEST_TOKEN)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r,
                    Err(_) => break, // the server is gone
                };
                let code = resp.status().as_u16();
                if code == 201 {
                    // Answered 201: from here on the object must exist.
                    let rv = match resp.json::<Value>().await {
                        Ok(v) => v["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        Err(_) => 0,
                    };
                    created.lock().unwrap().push((name, rv));
                } else {
                    let text = resp.text().await.unwrap_or_default();
                    unexpected
                        .lock()
                        .unwrap()
                        .push(format!("POST {name}: {code} {text}"));
                    break;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = created.lock().unwrap().len();
    blocking(|| server.kill9());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer task");
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "non-201 answers before the kill: {unexpected:?}"
    );
    let created = created.lock().unwrap().clone();
    assert!(before_kill > 0, "no create was acknowledged in 1.5 s");

    // The database on disk, as the crash left it, is consistent.
    let db = server.data_dir().join("server/db/state.db");
    assert!(db.exists(), "{} missing", db.display());
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA integrity_check")
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            "ok",
            "integrity_check after kill -9: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    blocking(|| server.restart());
    let api: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    let present: HashSet<String> = list.items.iter().map(|c| c.name_any()).collect();
    let missing: Vec<&String> = created
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !present.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged (201) creates are gone after kill -9 + restart, e.g. {:?}",
        missing.len(),
        created.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    // A few by GET as well, and the data is what was written.
    for (name, _) in created.iter().rev().take(16) {
        let c = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("GET {name} after restart: {e}"));
        let i = name.rsplit('-').next().unwrap();
        assert_eq!(data_of(&c, "i").as_deref(), Some(i), "{name} data");
    }

    // Revisions keep increasing across the crash.
    let max_rv = created.iter().map(|(_, rv)| *rv).max().unwrap_or(0);
    let fresh = api
        .create(&PostParams::default(), &cm("after-crash", &[]))
        .await
        .expect("create after restart");
    let fresh_rv = rv_num(fresh.metadata.resource_version.as_ref());
    assert!(
        fresh_rv > max_rv,
        "resourceVersion went backwards across the crash: new {fresh_rv} <= acknowledged {max_rv}"
    );
}

// ---------------------------------------------------------------- 5. restart

fn service(name: &str) -> Service {
    let mut s = Service::default();
    s.metadata.name = Some(name.to_string());
    s.spec = Some(ServiceSpec {
        ports: Some(vec![ServicePort {
            port: 80,
            ..Default::default()
        }]),
        selector: Some([("app".to_string(), name.to_string())].into()),
        ..Default::default()
    });
    s
}

fn cluster_ip(s: &Service) -> String {
    let ip = s
        .spec
        .as_ref()
        .and_then(|sp| sp.cluster_ip.clone())
        .unwrap_or_default();
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "service {} has no IPv4 clusterIP: {ip:?}",
        s.name_any()
    );
    ip
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_objects_revisions_ips_and_watch_continuity() {
    let mut server = blocking(Server::start);
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client, "default");

    let label = [("kone-test", "restart")];
    let c1 = cms
        .create(
            &PostParams::default(),
            &cm_labeled("keep", &label, &[("v", "1")]),
        )
        .await
        .expect("create keep");
    let pre_rv = c1.metadata.resource_version.clone().unwrap();
    let s1 = svcs
        .create(&PostParams::default(), &service("svc-a"))
        .await
        .expect("create svc-a");
    let ip_a = cluster_ip(&s1);
    let c2 = cms
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("patch keep");
    let rv2 = rv_num(c2.metadata.resource_version.as_ref());

    blocking(|| server.restart());
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client, "default");

    let c2b = cms.get("keep").await.expect("get keep after restart");
    assert_eq!(
        c2b.metadata.resource_version, c2.metadata.resource_version,
        "configmap rv changed"
    );
    assert_eq!(c2b.metadata.uid, c2.metadata.uid, "configmap uid changed");
    assert_eq!(
        c2b.metadata.creation_timestamp,
        c2.metadata.creation_timestamp
    );
    assert_eq!(c2b.data, c2.data);
    let s1b = svcs.get("svc-a").await.expect("get svc-a after restart");
    assert_eq!(
        s1b.metadata.resource_version, s1.metadata.resource_version,
        "service rv changed"
    );
    assert_eq!(s1b.metadata.uid, s1.metadata.uid, "service uid changed");
    assert_eq!(cluster_ip(&s1b), ip_a, "clusterIP changed across restart");

    // A new Service must not get an IP that is already held.
    let s2 = svcs
        .create(&PostParams::default(), &service("svc-b"))
        .await
        .expect("create svc-b");
    let ip_b = cluster_ip(&s2);
    assert_ne!(ip_b, ip_a, "svc-b got svc-a's clusterIP after restart");
    let all = Api::<Service>::all(server.client().await)
        .list(&ListParams::default())
        .await
        .expect("list services");
    let mut ips = HashSet::new();
    for s in &all.items {
        if let Some(ip) = s.spec.as_ref().and_then(|sp| sp.cluster_ip.clone()) {
            if ip != "None" && !ip.is_empty() {
                assert!(
                    ips.insert(ip.clone()),
                    "clusterIP {ip} is held by two services"
                );
            }
        }
    }

    // Post-restart writes, then a watch from the pre-restart rv must give
    // exactly: Modified(keep v2), Modified(keep v3), Added(keep2).
    let c3 = cms
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "3"}})),
        )
        .await
        .expect("patch keep after restart");
    let rv3 = rv_num(c3.metadata.resource_version.as_ref());
    assert!(
        rv3 > rv2,
        "rv after restart {rv3} is not above rv before {rv2}"
    );
    let k2 = cms
        .create(
            &PostParams::default(),
            &cm_labeled("keep2", &label, &[("v", "1")]),
        )
        .await
        .expect("create keep2");
    let rv4 = rv_num(k2.metadata.resource_version.as_ref());

    let wp = WatchParams::default().labels("kone-test=restart");
    let mut stream = cms
        .watch(&wp, &pre_rv)
        .await
        .unwrap_or_else(|e| panic!("watch from pre-restart rv {pre_rv}: {e}"))
        .boxed();
    let mut got: Vec<(String, String, u64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let ev = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => break,
        };
        match ev.expect("watch event") {
            WatchEvent::Added(o) => got.push((
                "ADDED".into(),
                o.name_any(),
                rv_num(o.metadata.resource_version.as_ref()),
            )),
            WatchEvent::Modified(o) => got.push((
                "MODIFIED".into(),
                o.name_any(),
                rv_num(o.metadata.resource_version.as_ref()),
            )),
            WatchEvent::Deleted(o) => got.push((
                "DELETED".into(),
                o.name_any(),
                rv_num(o.metadata.resource_version.as_ref()),
            )),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch from pre-restart rv {pre_rv}: error event {e:?}"),
        }
    }
    let want = vec![
        ("MODIFIED".to_string(), "keep".to_string(), rv2),
        ("MODIFIED".to_string(), "keep".to_string(), rv3),
        ("ADDED".to_string(), "keep2".to_string(), rv4),
    ];
    assert_eq!(got, want, "watch from pre-restart rv {pre_rv}");
}

// ---------------------------------------------------------------- 6. authentication

#[tokio::test(flavor = "multi_thread")]
async fn authn_public_paths_tokens_and_401() {
    let server = blocking(Server::start);
    let http = server.http();
    let base = server.url();

    let resp = http
        .get(format!("{base}/api/v1/namespaces"))
        .send()
        .await
        .expect("anonymous list");
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        code, 401,
        "GET /api/v1/namespaces without credentials: {body}"
    );
    assert_eq!(body["kind"], "Status", "401 body: {body}");
    assert_eq!(body["apiVersion"], "v1", "401 body: {body}");
    assert_eq!(body["code"], 401, "401 body: {body}");
    assert_eq!(body["reason"], "Unauthorized", "401 body: {body}");
    assert_eq!(body["status"], "Failure", "401 body: {body}");

    for p in ["/healthz", "/readyz", "/livez", "/version"] {
        let resp = http.get(format!("{base}{p}")).send().await.expect(p);
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(code, 200, "GET {p} without credentials: {text}");
        if p == "/version" {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("/version is not JSON ({e}): {text}"));
            assert!(
                v["gitVersion"].is_string(),
                "/version has no gitVersion: {v}"
            );
        } else {
            assert_eq!(text.trim(), "ok", "GET {p}");
        }
    }

    let resp = http
        .get(format!("{base}/api/v1/namespaces"))
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .expect("token list");
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        code, 200,
        "GET /api/v1/namespaces with the test token: {body}"
    );
    assert_eq!(body["kind"], "NamespaceList", "{body}");
    let names: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"default"),
        "namespaces {names:?} lack default"
    );

    let resp = http
        .get(format!("{base}/api/v1/namespaces"))
        .bearer_auth("kone-wrong-token")
        .send()
        .await
        .expect("wrong token");
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        code, 401,
        "GET /api/v1/namespaces with a wrong token: {body}"
    );
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "Unauthorized", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_with_bookmarks_get_them_periodically() {
    let server = Server::start_with_env(&[("KONE_WATCH_BOOKMARK_SECS", "1")]);
    let http = server.http();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=1&fieldSelector=metadata.name!=kube-root-ca.crt",
        server.url()
    );
    let mut resp = http
        .get(&url)
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200);
    let events = read_watch_lines(&mut resp, 1, 5).await;
    assert_eq!(events[0]["type"], "BOOKMARK", "{events:?}");
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");
    let rv: u64 = events[0]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("bookmark resourceVersion");
    assert!(rv >= 1, "bookmark at {rv}");

    // Without allowWatchBookmarks there are none: the next line is the event.
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}",
        server.url()
    );
    let mut plain = http
        .get(&url)
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .expect("watch");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&Default::default(), &cm("after-bookmark", &[("k", "v")]))
        .await
        .expect("create");
    let events = read_watch_lines(&mut plain, 1, 5).await;
    assert_eq!(events[0]["type"], "ADDED", "{events:?}");
}
