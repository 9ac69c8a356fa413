//! The local backend under concurrency and after crashes: what the
//! repository's lock-free writers rely on.

use lifeboat_storage::conformance::{check_race, race_put_if_absent};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::{Storage, StorageError, STALE_TEMP_AGE};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    assert_eq!(
        s.stat("data/ab/real").await.unwrap().map(|m| m.size),
        Some(4)
    );
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

/// Environment variables that turn [`race_child`] into one racer.
const RACE_ROOT: &str = "LIFEBOAT_TEST_RACE_ROOT";
const RACE_KEY: &str = "LIFEBOAT_TEST_RACE_KEY";
const RACE_TAG: &str = "LIFEBOAT_TEST_RACE_TAG";

/// One racing process (this test binary re-executed by
/// `put_if_absent_races_across_processes`); a no-op in a normal run.
#[tokio::test]
async fn race_child() {
    let (Ok(root), Ok(key), Ok(tag)) = (
        std::env::var(RACE_ROOT),
        std::env::var(RACE_KEY),
        std::env::var(RACE_TAG),
    ) else {
        return;
    };
    let s = LocalStorage::new(&root);
    // Start together: wait until the parent has started every racer.
    let go = std::path::Path::new(&root).join("go");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let won = race_put_if_absent(&s, &key, tag.parse().unwrap()).await;
    println!("RACE-RESULT {}", if won { "won" } else { "lost" });
}

#[tokio::test]
async fn put_if_absent_races_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let s = LocalStorage::new(&root);
    let exe = std::env::current_exe().unwrap();
    for round in 0..4 {
        let key = format!("locks/race-{round}");
        let _ = std::fs::remove_file(root.join("go"));
        let children: Vec<(u8, std::process::Child)> = (1..=6u8)
            .map(|tag| {
                let child = Command::new(&exe)
                    .args(["race_child", "--exact", "--nocapture", "--test-threads=1"])
                    .env(RACE_ROOT, &root)
                    .env(RACE_KEY, &key)
                    .env(RACE_TAG, tag.to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                (tag, child)
            })
            .collect();
        std::fs::write(root.join("go"), b"").unwrap();
        let mut wins = Vec::new();
        for (tag, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "racer {tag} failed: {out:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let won = if stdout.contains("RACE-RESULT won") {
                true
            } else {
                assert!(stdout.contains("RACE-RESULT lost"), "racer {tag}: {stdout}");
                false
            };
            wins.push((tag, won));
        }
        check_race(&s, &key, &wins).await;
    }
    let stray = walkdir_names(&root);
    assert!(
        stray.iter().all(|n| !n.starts_with(".tmp-")),
        "temp files left: {stray:?}"
    );
}

#[tokio::test]
async fn a_writer_never_takes_or_deletes_another_writers_temp_file() {
    // Two containers both running lifeboat as PID 1 used the same
    // `.tmp-<pid>-<counter>` names: the second writer's create failed and its
    // error path deleted the first writer's temp file.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let s = LocalStorage::new(&root);
    s.put("data/ab/first", b"1".to_vec()).await.unwrap();
    let d = root.join("data/ab");
    let theirs: Vec<_> = (0..64)
        .map(|n| d.join(format!(".tmp-{}-{n}", std::process::id())))
        .collect();
    for t in &theirs {
        std::fs::write(t, b"another writer's data").unwrap();
    }
    for n in 0..32 {
        s.put(&format!("data/ab/obj{n}"), vec![n; 10])
            .await
            .unwrap();
        s.put_if_absent(&format!("data/ab/new{n}"), vec![n; 5])
            .await
            .unwrap();
    }
    for t in &theirs {
        assert_eq!(std::fs::read(t).unwrap(), b"another writer's data");
    }
    // Our own temp names are random, never pid-based.
    let ours: Vec<String> = walkdir_names(&d)
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert_eq!(
        ours.len(),
        theirs.len(),
        "only the other writer's temp files remain"
    );
}

#[tokio::test]
async fn stale_temp_files_are_removed_and_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let s = LocalStorage::new(&root);
    s.put("data/ab/obj", b"x".to_vec()).await.unwrap();
    s.put("index/i", b"y".to_vec()).await.unwrap();
    let stale = [root.join("data/ab/.tmp-dead1"), root.join(".tmp-dead2")];
    let fresh = root.join("index/.tmp-being-written");
    let old = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
    for p in &stale {
        std::fs::write(p, b"half").unwrap();
        filetime::set_file_mtime(p, filetime::FileTime::from_system_time(old)).unwrap();
    }
    std::fs::write(&fresh, b"in progress").unwrap();
    // A file merely near the limit is kept too.
    let near = root.join("data/ab/.tmp-recent");
    std::fs::write(&near, b"r").unwrap();
    let recent = SystemTime::now() - STALE_TEMP_AGE + Duration::from_secs(600);
    filetime::set_file_mtime(&near, filetime::FileTime::from_system_time(recent)).unwrap();

    assert_eq!(s.remove_stale_temp(STALE_TEMP_AGE).await.unwrap(), 2);
    for p in &stale {
        assert!(!p.exists(), "{} should be gone", p.display());
    }
    assert!(fresh.exists() && near.exists());
    assert_eq!(s.get("data/ab/obj").await.unwrap(), b"x");
    assert_eq!(s.remove_stale_temp(STALE_TEMP_AGE).await.unwrap(), 0);
}

#[test]
fn a_relative_root_is_resolved_against_the_current_directory() {
    // `--repo r`: a bare relative name has an empty parent directory, which
    // neither mkdir nor fsync accept; the root is made absolute instead.
    let name = format!("rel-repo-{}", std::process::id());
    let s = LocalStorage::new(&name);
    assert_eq!(s.root(), std::env::current_dir().unwrap().join(&name));
}
