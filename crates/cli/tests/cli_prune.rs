//! End-to-end tests of `prune` (docs/FORMAT.md §18): it frees the data of
//! forgotten snapshots and nothing else, `--dry-run` changes nothing,
//! backups running in other processes meanwhile stay whole, and a prune
//! killed with -9 leaves a repository that verifies and that the next
//! prune finishes.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T0: u64 = 1_614_830_400;

fn count(repo: &Path, dir: &str) -> usize {
    fs::read_dir(repo.join(dir)).map_or(0, |d| {
        d.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
            .count()
    })
}

/// Restore every snapshot and compare it with the copy of its source kept
/// at backup time (`expected/<snapshot id>`).
fn assert_all_restore(ws: &Workspace) {
    for s in ws.snapshots() {
        let id = s["id"].as_str().unwrap();
        let out = ws.path(format!("restored-{id}"));
        ws.run(&["restore", id, "--to", out.to_str().unwrap()]).ok();
        assert_eq!(
            contents(&out),
            contents(&ws.path(format!("expected/{id}"))),
            "snapshot {id} restores its content"
        );
        fs::remove_dir_all(&out).unwrap();
    }
}

/// Back up `src` (stored as `src`) and keep a copy of it as the expected content.
fn backup_and_remember(ws: &Workspace, src: &str) -> String {
    let id = ws.backup(&[src])["id"].as_str().unwrap().to_string();
    remember(ws, src, &id);
    id
}

/// Keep a copy of `src` as snapshot `id`'s expected content.
fn remember(ws: &Workspace, src: &str, id: &str) {
    let dir = ws.path(format!("expected/{id}"));
    fs::create_dir_all(&dir).unwrap();
    copy_tree(&ws.path(src), &dir.join(src));
}

fn verify_read_data(ws: &Workspace) {
    let (code, v) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "verify --read-data: {v}");
}

#[test]
fn prune_frees_the_data_of_forgotten_snapshots_and_the_rest_restores() {
    let ws = Workspace::init();
    write_file(&ws.path("src/a.bin"), &pseudo_random(3 << 20, 1), 0o644, T0);
    let _old = backup_and_remember(&ws, "src");
    fs::remove_file(ws.path("src/a.bin")).unwrap();
    write_file(&ws.path("src/b.bin"), &pseudo_random(3 << 20, 2), 0o644, T0);
    let keep = backup_and_remember(&ws, "src");
    let packs_before = packs(&ws.repo).len();

    ws.run(&["forget", "--keep-last", "1"]).ok();
    let dry = ws.run(&["--json", "prune", "--dry-run"]);
    dry.ok();
    let d = dry.json();
    assert_eq!(d["dry_run"], true);
    assert!(d["unreferenced_packs"].as_u64().unwrap() >= 1, "{d}");
    assert!(d["bytes_freed"].as_u64().unwrap() >= 3 << 20, "{d}");
    assert_eq!(
        packs(&ws.repo).len(),
        packs_before,
        "a dry run deletes nothing"
    );

    let r = ws.run(&["prune"]);
    r.ok();
    assert!(r.stdout.contains("prune: freed"), "{}", r.stdout);
    assert_eq!(
        packs(&ws.repo).len(),
        packs_before - d["unreferenced_packs"].as_u64().unwrap() as usize
    );
    assert_eq!(count(&ws.repo, "tombstones"), 0, "the tombstone is gone");
    verify_read_data(&ws);
    assert_all_restore(&ws);
    assert_eq!(ws.snapshots()[0]["id"], keep.as_str());

    // Nothing left to free; the repository is marked for tombstone-aware writers.
    let again = ws.run(&["--json", "prune"]);
    again.ok();
    assert_eq!(again.json()["unreferenced_packs"], 0);
    let config = fs::read_to_string(ws.repo.join("config")).unwrap();
    assert!(config.contains("tombstones"), "{config}");
    // A backup after prune works (this build knows the feature).
    write_file(&ws.path("src/c.txt"), b"after prune\n", 0o644, T0);
    backup_and_remember(&ws, "src");
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

fn spawn(ws: &Workspace, args: &[&str]) -> Child {
    let mut c = ws.cmd();
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c.spawn().expect("spawn lifeboat")
}

fn jitter(trial: u64, max_ms: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis((nanos ^ (trial * 7919)) % max_ms)
}

#[test]
fn backups_in_other_processes_while_prune_runs_stay_whole() {
    let ws = Workspace::init();
    for trial in 0..3u64 {
        // Garbage to prune: a snapshot forgotten before the race.
        let g = format!("g{trial}");
        write_file(
            &ws.path(format!("{g}/x.bin")),
            &pseudo_random(2 << 20, 100 + trial),
            0o644,
            T0,
        );
        let gid = ws.backup(&[&g, "--source-name", "garbage"])["id"]
            .as_str()
            .unwrap()
            .to_string();
        ws.run(&[
            "forget",
            "--source",
            "garbage",
            "--keep-tag",
            "none-has-this",
        ])
        .ok();
        assert!(ws.snapshots().iter().all(|s| s["id"] != gid.as_str()));
        // A backup sharing some data with the garbage and adding its own.
        let s = format!("s{trial}");
        write_file(
            &ws.path(format!("{s}/same.bin")),
            &pseudo_random(2 << 20, 100 + trial),
            0o644,
            T0,
        );
        write_file(
            &ws.path(format!("{s}/new.bin")),
            &pseudo_random(24 << 20, 200 + trial),
            0o644,
            T0,
        );
        let mut backup = spawn(&ws, &["--json", "backup", &s]);
        std::thread::sleep(jitter(trial, 1500));
        let prune = ws.run(&["prune"]);
        let status = backup.wait().unwrap();
        assert!(
            status.success(),
            "backup failed during prune (trial {trial})"
        );
        prune.ok();
        let id = ws
            .snapshots()
            .iter()
            .find(|x| x["paths"][0].as_str().is_some_and(|p| p.ends_with(&s)))
            .map(|x| x["id"].as_str().unwrap().to_string())
            .expect("the backup's snapshot");
        remember(&ws, &s, &id);
        verify_read_data(&ws);
        assert_all_restore(&ws);
    }
    // A last prune with nothing running completes and leaves no tombstone.
    ws.run(&["prune"]).ok();
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

#[test]
fn a_prune_killed_while_it_waits_is_finished_by_the_next_one() {
    let ws = Workspace::init();
    write_file(&ws.path("src/a.bin"), &pseudo_random(2 << 20, 7), 0o644, T0);
    ws.backup(&["src"]);
    write_file(&ws.path("src/a.bin"), &pseudo_random(2 << 20, 8), 0o644, T0);
    backup_and_remember(&ws, "src");
    ws.run(&["forget", "--keep-last", "1"]).ok();
    // A live backup lock (fresh heartbeat): prune marks, then waits for it.
    let now = jiff::Timestamp::now().to_string();
    fs::create_dir_all(ws.repo.join("locks")).unwrap();
    let lock = ws.repo.join("locks").join("ab".repeat(32));
    fs::write(
        &lock,
        format!(r#"{{"version":1,"kind":"backup","host":"test","pid":1,"started":"{now}","heartbeat":"{now}"}}"#),
    )
    .unwrap();
    let mut prune = spawn(&ws, &["prune"]);
    // Wait until the tombstone exists, then kill -9.
    while count(&ws.repo, "tombstones") == 0 {
        assert!(
            prune.try_wait().unwrap().is_none(),
            "prune ended while a live lock exists"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    prune.kill().unwrap();
    prune.wait().unwrap();
    assert_eq!(count(&ws.repo, "tombstones"), 1);
    verify_read_data(&ws);
    assert_all_restore(&ws);
    // The backup ends; the next prune finishes the job.
    fs::remove_file(&lock).unwrap();
    let r = ws.run(&["--json", "prune"]);
    r.ok();
    assert!(r.json()["unreferenced_packs"].as_u64().unwrap() >= 1);
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

#[test]
fn prune_killed_at_random_points_leaves_a_repository_that_verifies() {
    let ws = Workspace::init();
    for trial in 0..4u64 {
        let g = format!("g{trial}");
        write_file(
            &ws.path(format!("{g}/x.bin")),
            &pseudo_random(4 << 20, 300 + trial),
            0o644,
            T0,
        );
        ws.backup(&[&g, "--source-name", "garbage"]);
        ws.run(&[
            "forget",
            "--source",
            "garbage",
            "--keep-tag",
            "none-has-this",
        ])
        .ok();
        let k = format!("k{trial}");
        write_file(
            &ws.path(format!("{k}/y.bin")),
            &pseudo_random(1 << 20, 400 + trial),
            0o644,
            T0,
        );
        backup_and_remember(&ws, &k);
        let mut prune = spawn(&ws, &["prune"]);
        std::thread::sleep(jitter(trial, 800));
        let _ = prune.kill();
        prune.wait().unwrap();
        verify_read_data(&ws);
        assert_all_restore(&ws);
    }
    let r = ws.run(&["--json", "prune"]);
    r.ok();
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    let again = ws.run(&["--json", "prune", "--dry-run"]);
    again.ok();
    let v = again.json();
    assert_eq!(
        (v["unreferenced_packs"].as_u64(), v["orphan_packs"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    verify_read_data(&ws);
    assert_all_restore(&ws);
}
