//! The local backend under concurrency and after crashes: what the
//! repository's lock-free writers rely on.

use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::{Storage, StorageError};
use std::sync::Arc;

fn value(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag; len];
    v[0] = tag.wrapping_add(1);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_into_new_directories_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(LocalStorage::new(dir.path().join("repo")));
    let mut tasks = Vec::new();
    for t in 0..16u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..8u8 {
                // Every task races to create the same fresh directories.
                let key = format!("data/{k:02x}/obj-{t}-{k}");
                s.put(&key, value(t ^ k, 1000 + usize::from(t)))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let listed = s.list("data/").await.unwrap();
    assert_eq!(listed.len(), 16 * 8);
    for m in &listed {
        let parts: Vec<&str> = m.key.rsplit('/').next().unwrap().split('-').collect();
        let (t, k): (u8, u8) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        assert_eq!(m.size, 1000 + u64::from(t));
        assert_eq!(
            s.get(&m.key).await.unwrap(),
            value(t ^ k, 1000 + usize::from(t))
        );
    }
    let stray = walkdir_names(&dir.path().join("repo"));
    assert!(
        stray.iter().all(|n| !n.starts_with(".tmp-")),
        "temp files left: {stray:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_one_whole_value_while_a_key_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(LocalStorage::new(dir.path().join("repo")));
    const LEN: usize = 256 * 1024;
    s.put("index/shared", value(0, LEN)).await.unwrap();
    let mut writers = Vec::new();
    for t in 1..=4u8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..6u8 {
                s.put("index/shared", value(t * 10 + round, LEN))
                    .await
                    .unwrap();
            }
        }));
    }
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let v = s.get("index/shared").await.unwrap();
                assert_eq!(v.len(), LEN, "a reader saw a partial object");
                let tag = v[1];
                assert_eq!(v[0], tag.wrapping_add(1));
                assert!(
                    v[1..].iter().all(|&b| b == tag),
                    "a reader saw mixed objects"
                );
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    reader.await.unwrap();
    let v = s.get("index/shared").await.unwrap();
    assert_eq!(v.len(), LEN);
    assert_eq!(s.list("index/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn leftovers_of_a_crashed_write_are_not_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let s = LocalStorage::new(&root);
    s.put("data/ab/real", b"real".to_vec()).await.unwrap();
    // What a writer killed between create and rename leaves behind.
    std::fs::write(root.join("data/ab/.tmp-999999-7"), b"half").unwrap();
    // A directory where an object key points is not an object either.
    std::fs::create_dir_all(root.join("data/cd/dir-not-object")).unwrap();
    let keys: Vec<String> = s
        .list("data/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, vec!["data/ab/real".to_string()]);
    assert_eq!(s.stat("data/cd/dir-not-object").await.unwrap(), None);
    assert_eq!(s.stat("data/ab/real").await.unwrap(), Some(4));
}

#[tokio::test]
async fn ranges_that_overflow_or_pass_the_end_are_short_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStorage::new(dir.path().join("repo"));
    s.put("p", b"0123456789".to_vec()).await.unwrap();
    for (offset, len) in [(u64::MAX, 2), (1, u64::MAX), (11, 0), (0, 11)] {
        match s.get_range("p", offset, len).await {
            Err(StorageError::ShortRead { size: 10, .. }) => {}
            other => panic!("range {offset}+{len}: {other:?}"),
        }
    }
    assert_eq!(s.get_range("p", 0, 10).await.unwrap(), b"0123456789");
    assert_eq!(s.get_range("p", 9, 1).await.unwrap(), b"9");
}

fn walkdir_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdir_names(&e.path()));
        }
    }
    out
}
