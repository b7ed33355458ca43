//! Behaviour of the SQLite backend through the `Backend` trait.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, EventKind, SqliteBackend, SqliteOptions, StoreError};

fn opts() -> SqliteOptions {
    SqliteOptions {
        compact_interval: Duration::ZERO,
        ..SqliteOptions::default()
    }
}

fn open(dir: &tempfile::TempDir) -> Arc<SqliteBackend> {
    open_with(dir, opts())
}

fn open_with(dir: &tempfile::TempDir, o: SqliteOptions) -> Arc<SqliteBackend> {
    let path = dir.path().join("server/db/state.db");
    match SqliteBackend::open_with(&path, o) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

#[tokio::test]
async fn crud_and_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    assert_eq!(s.current_revision(), 0);
    assert!(s.get("/a").await.unwrap().is_none());

    let r1 = s.create("/a", b"one".to_vec()).await.unwrap();
    assert_eq!(r1, 1);
    assert!(matches!(
        s.create("/a", b"x".to_vec()).await,
        Err(StoreError::AlreadyExists)
    ));
    let kv = s.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"one"[..], 1, 1)
    );

    let r2 = s.update("/a", b"two".to_vec(), r1).await.unwrap();
    assert_eq!(r2, 2);
    match s.update("/a", b"stale".to_vec(), r1).await {
        Err(StoreError::Conflict { current }) => assert_eq!(current, r2),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("/missing", b"x".to_vec(), 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete("/a", Some(r1)).await,
        Err(StoreError::Conflict { current: 2 })
    ));

    let (r3, old) = s.delete("/a", Some(r2)).await.unwrap();
    assert_eq!(r3, 3);
    assert_eq!((old.value.as_slice(), old.mod_revision), (&b"two"[..], 2));
    assert!(s.get("/a").await.unwrap().is_none());
    assert!(matches!(
        s.delete("/a", None).await,
        Err(StoreError::NotFound)
    ));

    // Re-created after a tombstone: a new life, a new create revision.
    let r4 = s.create("/a", b"again".to_vec()).await.unwrap();
    let kv = s.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    assert_eq!(s.current_revision(), 4);
    // The failed writes consumed no revision.
    assert_eq!(s.stats().live_keys, 1);
}

#[tokio::test]
async fn list_prefix_limit_start_after_and_past() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for i in 0..10 {
        s.create(&format!("/pods/ns/p{i}"), vec![i]).await.unwrap();
    }
    s.create("/pods/other/x", vec![]).await.unwrap();
    s.create("/podsx", vec![]).await.unwrap(); // not under "/pods/"
    let before_changes = s.current_revision();

    let all = s.list("/pods/", None, 0, None).await.unwrap();
    assert_eq!(all.items.len(), 11);
    assert!(!all.more);
    assert_eq!(all.revision, before_changes);
    assert_eq!(s.count("/pods/ns/").await.unwrap(), 10);
    assert_eq!(s.count("").await.unwrap(), 12);

    // Pages of 4, each continuing after the last key, read at the first
    // page's revision while writes happen in between.
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    let mut at = None;
    loop {
        let page = s.list("/pods/ns/", after.as_deref(), 4, at).await.unwrap();
        at = Some(page.revision);
        keys.extend(page.items.iter().map(|kv| kv.key.clone()));
        s.create(&format!("/pods/ns/z{}", keys.len()), vec![])
            .await
            .unwrap();
        if !page.more {
            break;
        }
        after = page.items.last().map(|kv| kv.key.clone());
    }
    let want: Vec<String> = (0..10).map(|i| format!("/pods/ns/p{i}")).collect();
    assert_eq!(keys, want);

    // Change and delete, then look at the past.
    let kv = s.get("/pods/ns/p1").await.unwrap().unwrap();
    s.update("/pods/ns/p1", b"new".to_vec(), kv.mod_revision)
        .await
        .unwrap();
    s.delete("/pods/ns/p2", None).await.unwrap();
    let now = s.list("/pods/ns/p", None, 0, None).await.unwrap();
    assert_eq!(now.items.len(), 9);
    let then = s
        .list("/pods/ns/p", None, 0, Some(before_changes))
        .await
        .unwrap();
    assert_eq!(then.items.len(), 10);
    assert_eq!(then.revision, before_changes);
    assert_eq!(then.items[1].value, vec![1]);
    assert_eq!(then.items[2].key, "/pods/ns/p2");
    // Past read with limit and start_after.
    let page = s
        .list("/pods/ns/", Some("/pods/ns/p1"), 2, Some(before_changes))
        .await
        .unwrap();
    let got: Vec<&str> = page.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(got, ["/pods/ns/p2", "/pods/ns/p3"]);
    assert!(page.more);

    let future = s.current_revision() + 1;
    assert!(matches!(
        s.list("/", None, 0, Some(future)).await,
        Err(StoreError::FutureRevision(r)) if r == future
    ));
}

#[tokio::test]
async fn compacted_revisions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let r1 = s.create("/k", b"1".to_vec()).await.unwrap();
    let r2 = s.update("/k", b"2".to_vec(), r1).await.unwrap();
    let r3 = s.update("/k", b"3".to_vec(), r2).await.unwrap();
    s.create("/gone", vec![]).await.unwrap();
    s.delete("/gone", None).await.unwrap();
    s.update("/k", b"4".to_vec(), r3).await.unwrap();

    assert_eq!(s.compact_to(r3).await.unwrap(), r3);
    assert_eq!(s.stats().compacted_revision, r3);
    assert!(matches!(
        s.list("/", None, 0, Some(r2)).await,
        Err(StoreError::Compacted { requested, compacted }) if requested == r2 && compacted == r3
    ));
    assert!(matches!(
        s.watch("/", r2),
        Err(StoreError::Compacted { .. })
    ));
    // The compacted revision itself is still readable and watchable.
    let at = s.list("/", None, 0, Some(r3)).await.unwrap();
    assert_eq!(at.items.len(), 1);
    assert_eq!(at.items[0].value, b"3");
    let mut w = s.watch("/", r3).unwrap();
    let e = w.recv().await.unwrap().unwrap();
    assert_eq!((e.kind, e.kv.mod_revision), (EventKind::Put, r3 + 1));
    let e = w.recv().await.unwrap().unwrap();
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!(e.kv.key, "/gone");
    let e = w.recv().await.unwrap().unwrap();
    // prev survives compaction: it is the newest row at the floor.
    assert_eq!(
        e.prev.map(|p| (p.value, p.mod_revision)),
        Some((b"3".to_vec(), r3))
    );
}

#[tokio::test]
async fn watch_replays_then_follows_without_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let writers = 8;
    let per_writer = 150;
    s.create("/w/seed", vec![]).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..writers {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let key = format!("/w/{t}");
            let mut rev = s.create(&key, vec![0]).await.unwrap();
            for i in 1..per_writer {
                rev = s.update(&key, vec![i as u8], rev).await.unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            s.delete(&key, Some(rev)).await.unwrap();
        }));
    }
    // Start watching from the beginning while the writers run.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut w = s.watch("/w/", 0).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let total = 1 + writers * (per_writer + 1);
    let mut last = 0;
    let mut seen = 0;
    while seen < total {
        let e = tokio::time::timeout(Duration::from_secs(5), w.recv())
            .await
            .expect("watch stalled")
            .expect("watch closed")
            .expect("watch error");
        assert!(e.kv.mod_revision > last, "revisions must strictly increase");
        // A single key per writer and one writer at a time: prev is the
        // previous event for that key.
        if e.kv.key != "/w/seed" && e.kind == EventKind::Put && e.kv.value != [0] {
            let prev = e.prev.as_ref().expect("update has prev");
            assert_eq!(prev.value[0] + 1, e.kv.value[0]);
        }
        if e.kind == EventKind::Delete {
            assert_eq!(e.kv.value, vec![(per_writer - 1) as u8]);
        }
        last = e.kv.mod_revision;
        seen += 1;
    }
    assert_eq!(last, s.current_revision());
    assert!(tokio::time::timeout(Duration::from_millis(50), w.recv())
        .await
        .is_err());

    // Prefix filtering and live delivery.
    let mut only_a = s.watch("/a/", s.current_revision()).unwrap();
    s.create("/b/x", vec![]).await.unwrap();
    let ra = s.create("/a/x", vec![]).await.unwrap();
    let e = only_a.recv().await.unwrap().unwrap();
    assert_eq!((e.kv.key.as_str(), e.kv.mod_revision), ("/a/x", ra));
}

#[tokio::test]
async fn slow_watcher_is_ended_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(
        &dir,
        SqliteOptions {
            watch_buffer: 50,
            ..opts()
        },
    );
    let mut w = s.watch("/", 0).unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                s.create(&format!("/{t}/{i}"), vec![]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut last = 0;
    loop {
        match w.recv().await {
            Some(Ok(e)) => {
                assert_eq!(e.kv.mod_revision, last + 1, "no event may be skipped");
                last = e.kv.mod_revision;
            }
            Some(Err(StoreError::TooSlow { last_delivered })) => {
                assert_eq!(last_delivered, last);
                break;
            }
            other => panic!("expected TooSlow, got {other:?}"),
        }
    }
    assert!(last < 800);
    assert!(w.recv().await.is_none());
    assert_eq!(s.watcher_count(), 0);
}

#[tokio::test]
async fn dropped_watch_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let w = s.watch("/", 0).unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.create("/x", vec![]).await.unwrap();
    assert_eq!(s.watcher_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_many_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::with_capacity(100);
            for i in 0..100 {
                revs.push(s.create(&format!("/g/{t}/{i}"), vec![7; 64]).await.unwrap());
            }
            revs
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(all.insert(r), "revision {r} handed out twice");
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "6400 creates by 64 writers: {elapsed:?} ({:.0}/s)",
        6400.0 / elapsed.as_secs_f64()
    );
    assert_eq!(all.len(), 6400);
    assert_eq!(s.current_revision(), 6400);
    assert_eq!(s.count("/g/").await.unwrap(), 6400);

    // While we have them: a list of thousands of small values is fast.
    let started = Instant::now();
    let l = s.list("/g/", None, 0, None).await.unwrap();
    eprintln!("list of {}: {:?}", l.items.len(), started.elapsed());
    assert_eq!(l.items.len(), 6400);
}

#[tokio::test]
async fn reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server/db/state.db");
    {
        let s = open(&dir);
        let r = s.create("/a", b"1".to_vec()).await.unwrap();
        s.update("/a", b"2".to_vec(), r).await.unwrap();
        s.create("/b", b"x".to_vec()).await.unwrap();
        s.delete("/b", None).await.unwrap();
        s.compact_to(2).await.unwrap();
    }
    let s = open(&dir);
    assert_eq!(s.current_revision(), 4);
    assert_eq!(s.stats().compacted_revision, 2);
    assert_eq!(s.stats().live_keys, 1);
    let kv = s.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"2"[..], 2));
    // Revisions keep counting up, never reused.
    assert_eq!(s.create("/c", vec![]).await.unwrap(), 5);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let av: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(av, 2, "auto_vacuum must be INCREMENTAL");
    let jm: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_bounds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with(
        &dir,
        SqliteOptions {
            keep_revisions: 100,
            keep_duration: Duration::ZERO,
            ..opts()
        },
    );
    let value = vec![b'v'; 512];
    let mut tasks = Vec::new();
    for k in 0..100 {
        let s = Arc::clone(&s);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/c/{k}");
            let mut rev = s.create(&key, value.clone()).await.unwrap();
            for _ in 0..200 {
                rev = s.update(&key, value.clone(), rev).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = s.stats();
    let target = s.compact_now().await.unwrap();
    assert_eq!(target, before.current_revision - 100);
    let after = s.stats();
    eprintln!(
        "compaction: {} -> {} bytes for 100 live keys of 512 bytes",
        before.db_size_bytes, after.db_size_bytes
    );
    assert!(
        after.db_size_bytes * 5 < before.db_size_bytes,
        "{} -> {}",
        before.db_size_bytes,
        after.db_size_bytes
    );
    // All current values are intact, and the window is still readable.
    assert_eq!(s.count("/c/").await.unwrap(), 100);
    let l = s.list("/c/", None, 0, Some(target)).await.unwrap();
    assert_eq!(l.items.len(), 100);
    let mut w = s.watch("/c/", target).unwrap();
    let e = w.recv().await.unwrap().unwrap();
    assert_eq!(e.kv.mod_revision, target + 1);
    assert!(e.prev.is_some());
}

#[tokio::test]
async fn closing_the_store_ends_watches_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let mut w = s.watch("/", 0).unwrap();
    let r = s.create("/x", vec![]).await.unwrap();
    drop(s);
    let e = w.recv().await.unwrap().unwrap();
    assert_eq!(e.kv.mod_revision, r);
    assert!(matches!(w.recv().await, Some(Err(StoreError::Internal(_)))));
    assert!(w.recv().await.is_none());
}
