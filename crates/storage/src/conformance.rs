//! The conformance suite every [`Storage`] backend must pass.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty storage.
//! Races between processes need the backend opened in several processes:
//! [`race_put_if_absent`] is what each racing process runs, and
//! [`check_race`] checks the outcome (see `crates/storage/tests`).

use crate::{Storage, StorageError};
use std::time::{Duration, SystemTime};

/// Run every conformance check against an empty storage; panics on failure.
pub async fn run_all(s: &dyn Storage) {
    put_get_roundtrip(s).await;
    put_replaces_atomically(s).await;
    missing_is_not_found(s).await;
    ranges_and_short_reads(s).await;
    list_is_recursive_and_prefixed(s).await;
    prefixes_are_plain_string_prefixes(s).await;
    list_pages_cover_everything_once(s).await;
    last_modified_is_the_write_time(s).await;
    put_if_absent_creates_once(s).await;
    put_if_absent_races_within_a_process(s).await;
    delete_is_idempotent(s).await;
    invalid_keys_are_refused(s).await;
}

/// The bytes racer `tag` writes: large enough that a torn or mixed write
/// would show, and distinct per racer in every byte.
pub fn racer_value(tag: u8) -> Vec<u8> {
    let mut v = vec![tag; 4 << 20];
    v[0] = tag.wrapping_add(1);
    v
}

/// One racer: `put_if_absent` of [`racer_value`]`(tag)` at `key`; `true` if it won.
pub async fn race_put_if_absent(s: &dyn Storage, key: &str, tag: u8) -> bool {
    match s.put_if_absent(key, racer_value(tag)).await {
        Ok(()) => true,
        Err(StorageError::AlreadyExists { .. }) => false,
        Err(e) => panic!("racer {tag}: {e}"),
    }
}

/// After a race: exactly one of `wins` is true and the object is exactly
/// that racer's bytes, never a mixture.
pub async fn check_race(s: &dyn Storage, key: &str, wins: &[(u8, bool)]) {
    let winners: Vec<u8> = wins.iter().filter(|w| w.1).map(|w| w.0).collect();
    assert_eq!(winners.len(), 1, "exactly one racer must win: {wins:?}");
    let got = s.get(key).await.unwrap();
    assert!(
        got == racer_value(winners[0]),
        "the object is not the winner's bytes (len {}, first bytes {:?})",
        got.len(),
        &got[..got.len().min(4)]
    );
}

async fn put_get_roundtrip(s: &dyn Storage) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s.put("conf/a/one", data.clone()).await.unwrap();
    assert_eq!(s.get("conf/a/one").await.unwrap(), data);
    assert_eq!(
        s.stat("conf/a/one").await.unwrap().map(|m| m.size),
        Some(data.len() as u64)
    );
    s.put("conf/empty", Vec::new()).await.unwrap();
    assert_eq!(s.get("conf/empty").await.unwrap(), Vec::<u8>::new());
}

async fn put_replaces_atomically(s: &dyn Storage) {
    s.put("conf/replace", b"old".to_vec()).await.unwrap();
    s.put("conf/replace", b"newer".to_vec()).await.unwrap();
    assert_eq!(s.get("conf/replace").await.unwrap(), b"newer");
}

async fn missing_is_not_found(s: &dyn Storage) {
    assert!(matches!(
        s.get("conf/missing").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.get_range("conf/missing", 0, 1).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(s.stat("conf/missing").await.unwrap(), None);
}

async fn ranges_and_short_reads(s: &dyn Storage) {
    s.put("conf/range", b"0123456789".to_vec()).await.unwrap();
    assert_eq!(s.get_range("conf/range", 3, 4).await.unwrap(), b"3456");
    assert_eq!(s.get_range("conf/range", 10, 0).await.unwrap(), b"");
    assert!(matches!(
        s.get_range("conf/range", 8, 5).await,
        Err(StorageError::ShortRead { size: 10, .. })
    ));
}

async fn list_is_recursive_and_prefixed(s: &dyn Storage) {
    s.put("list/x/1", b"a".to_vec()).await.unwrap();
    s.put("list/x/y/2", b"bb".to_vec()).await.unwrap();
    s.put("listother/3", b"c".to_vec()).await.unwrap();
    let keys: Vec<(String, u64)> = s
        .list("list/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    assert_eq!(keys, vec![("list/x/1".into(), 1), ("list/x/y/2".into(), 2)]);
    assert!(s.list("nothing-here/").await.unwrap().is_empty());
}

async fn prefixes_are_plain_string_prefixes(s: &dyn Storage) {
    for k in ["pfx/ab/1", "pfx/abc", "pfx/a", "pfx/b/2", "pfxz"] {
        s.put(k, b"p".to_vec()).await.unwrap();
    }
    let keys = |v: Vec<crate::ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(s.list("pfx/a").await.unwrap()),
        ["pfx/a", "pfx/ab/1", "pfx/abc"]
    );
    assert_eq!(
        keys(s.list("pfx/ab").await.unwrap()),
        ["pfx/ab/1", "pfx/abc"]
    );
    assert_eq!(keys(s.list("pfx").await.unwrap()).len(), 5);
    assert!(keys(s.list("").await.unwrap()).contains(&"pfxz".to_string()));
    assert!(s.list("pfx/q").await.unwrap().is_empty());
}

async fn list_pages_cover_everything_once(s: &dyn Storage) {
    let mut want = Vec::new();
    for i in 0..23 {
        let key = format!("pages/{:02x}/obj{i}", i % 5);
        s.put(&key, vec![i as u8; i]).await.unwrap();
        want.push(key);
    }
    want.sort();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.list_page("pages/", cursor.as_deref(), 5).await.unwrap();
        assert!(page.objects.len() <= 5);
        got.extend(page.objects.into_iter().map(|m| m.key));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(got, want, "pages must list every object once, in order");
    assert!((5..=6).contains(&pages), "{pages} pages for 23 objects");
    let all: Vec<String> = s
        .list("pages/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(all, want);
    let empty = s.list_page("pages/", Some("pages/zz"), 5).await.unwrap();
    assert!(empty.objects.is_empty() && empty.next.is_none());
}

async fn last_modified_is_the_write_time(s: &dyn Storage) {
    let slack = Duration::from_secs(120);
    let before = SystemTime::now() - slack;
    s.put("conf/mtime", b"t".to_vec()).await.unwrap();
    let after = SystemTime::now() + slack;
    let meta = s.stat("conf/mtime").await.unwrap().unwrap();
    assert_eq!((meta.key.as_str(), meta.size), ("conf/mtime", 1));
    assert!(meta.last_modified > before && meta.last_modified < after);
    let listed = s.list("conf/mtime").await.unwrap();
    assert_eq!(listed, vec![meta]);
}

async fn put_if_absent_creates_once(s: &dyn Storage) {
    s.put_if_absent("conf/once", b"first".to_vec())
        .await
        .unwrap();
    match s.put_if_absent("conf/once", b"second".to_vec()).await {
        Err(StorageError::AlreadyExists { key, .. }) => assert_eq!(key, "conf/once"),
        other => panic!("second put_if_absent: {other:?}"),
    }
    assert_eq!(s.get("conf/once").await.unwrap(), b"first");
    // It creates missing parents like put, and refuses over an object put wrote.
    s.put_if_absent("conf/new/dir/once", b"x".to_vec())
        .await
        .unwrap();
    s.put("conf/by-put", b"p".to_vec()).await.unwrap();
    assert!(matches!(
        s.put_if_absent("conf/by-put", b"q".to_vec()).await,
        Err(StorageError::AlreadyExists { .. })
    ));
    assert_eq!(s.get("conf/by-put").await.unwrap(), b"p");
    assert!(matches!(
        s.put_if_absent("../x", vec![]).await,
        Err(StorageError::InvalidKey(_))
    ));
}

async fn put_if_absent_races_within_a_process(s: &dyn Storage) {
    for round in 0..3 {
        let key = format!("conf/race/{round}");
        let key = key.as_str();
        let racers =
            (1..=8u8).map(|tag| async move { (tag, race_put_if_absent(s, key, tag).await) });
        let wins = futures_join_all(racers).await;
        check_race(s, key, &wins).await;
    }
}

/// Run futures concurrently and collect their outputs in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("ready")).collect()
}

async fn delete_is_idempotent(s: &dyn Storage) {
    s.put("conf/del", b"x".to_vec()).await.unwrap();
    s.delete("conf/del").await.unwrap();
    assert_eq!(s.stat("conf/del").await.unwrap(), None);
    // A deleted key is free again for put_if_absent.
    s.put_if_absent("conf/del", b"y".to_vec()).await.unwrap();
    s.delete("conf/del").await.unwrap();
    s.delete("conf/del").await.unwrap();
}

async fn invalid_keys_are_refused(s: &dyn Storage) {
    assert!(matches!(
        s.put("../escape", vec![]).await,
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        s.get("/etc/passwd").await,
        Err(StorageError::InvalidKey(_))
    ));
}
