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

/// A snapshot that is forgotten, plus a kept one; returns (forgotten id,
/// a copy of its snapshot object to put back later).
fn forgotten_snapshot(ws: &Workspace) -> (String, Vec<u8>) {
    write_file(
        &ws.path("src/a.bin"),
        &pseudo_random(2 << 20, 11),
        0o644,
        T0,
    );
    let old = backup_and_remember(ws, "src");
    fs::remove_file(ws.path("src/a.bin")).unwrap();
    write_file(
        &ws.path("src/b.bin"),
        &pseudo_random(2 << 20, 12),
        0o644,
        T0,
    );
    backup_and_remember(ws, "src");
    let object = fs::read(ws.repo.join("snapshots").join(&old)).unwrap();
    ws.run(&["forget", "--keep-last", "1"]).ok();
    (old, object)
}

/// A prune paused (`LIFEBOAT_TEST_PRUNE_PAUSE`) at `stage`, once it got there.
fn paused_prune(ws: &Workspace, stage: &str) -> Child {
    let dir = ws.path("pause");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("{stage}.pause")), b"").unwrap();
    let mut c = ws.cmd();
    c.args(["--json", "prune"])
        .env("LIFEBOAT_TEST_PRUNE_PAUSE", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn lifeboat");
    while !dir.join(format!("{stage}.reached")).exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "prune ended before reaching {stage}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn resume(ws: &Workspace, stage: &str, child: Child) -> std::process::Output {
    fs::remove_file(ws.path(format!("pause/{stage}.pause"))).unwrap();
    child.wait_with_output().unwrap()
}

/// A live `kind: prune` lock of a process on another host.
fn foreign_prune_lock(ws: &Workspace, heartbeat: &str) -> std::path::PathBuf {
    fs::create_dir_all(ws.repo.join("locks")).unwrap();
    let lock = ws.repo.join("locks").join("cd".repeat(32));
    fs::write(
        &lock,
        format!(r#"{{"version":1,"kind":"prune","host":"elsewhere","pid":1,"started":"{heartbeat}","heartbeat":"{heartbeat}"}}"#),
    )
    .unwrap();
    lock
}

#[test]
fn a_second_prune_while_one_runs_fails_with_exit_21_and_touches_nothing() {
    let ws = Workspace::init();
    forgotten_snapshot(&ws);
    let first = paused_prune(&ws, "marked");
    assert_eq!(count(&ws.repo, "tombstones"), 1);
    let packs_before = packs(&ws.repo).len();
    let mut second = spawn(&ws, &["prune"]);
    // Without the prune lock the second prune marks too (a second
    // tombstone) and, once done, deletes the first one's tombstone.
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(
            count(&ws.repo, "tombstones") < 2,
            "a second prune marked while the first one runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(21), "{err}");
    assert!(err.contains("another prune is running"), "{err}");
    assert_eq!(
        count(&ws.repo, "tombstones"),
        1,
        "the first tombstone stays"
    );
    assert_eq!(packs(&ws.repo).len(), packs_before);
    // The first prune finishes; its lock is gone, the next prune runs.
    let out = resume(&ws, "marked", first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    assert_eq!(count(&ws.repo, "locks"), 0, "the prune lock is released");
    ws.run(&["prune"]).ok();
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

#[test]
fn a_prune_lock_of_another_host_blocks_until_stale_by_the_storage_clock() {
    let ws = Workspace::init();
    forgotten_snapshot(&ws);
    let now = jiff::Timestamp::now().to_string();
    let lock = foreign_prune_lock(&ws, &now);
    ws.run(&["prune"])
        .error(21, &["another prune is running", "elsewhere"]);
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    // Its holder died 20 minutes ago: heartbeat and last_modified are old.
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(20);
    fs::remove_file(&lock).unwrap();
    let lock = foreign_prune_lock(&ws, &old.to_string());
    set_mtime(&lock, old.as_second() as u64, 0);
    let r = ws.run(&["--json", "prune"]);
    r.ok();
    assert!(r.json()["unreferenced_packs"].as_u64().unwrap() >= 1);
    assert!(!lock.exists(), "the stale prune lock is removed");
    assert_eq!(count(&ws.repo, "locks"), 0);
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

#[test]
fn a_snapshot_written_while_prune_waits_keeps_its_data() {
    // §18 step 3: a backup that started before the mark deduplicated
    // against the marked data and writes its snapshot during the wait.
    let ws = Workspace::init();
    let (old, object) = forgotten_snapshot(&ws);
    let prune = paused_prune(&ws, "marked");
    fs::write(ws.repo.join("snapshots").join(&old), object).unwrap();
    let out = resume(&ws, "marked", prune);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["unmarked"].as_u64().unwrap() >= 1, "{v}");
    assert!(ws.snapshots().iter().any(|s| s["id"] == old.as_str()));
    verify_read_data(&ws);
    assert_all_restore(&ws);
}

#[test]
fn a_snapshot_landing_after_the_recheck_is_reported_damaged() {
    // The documented residual risk: a snapshot put that hung past the
    // re-check lands while packs are deleted. Prune says so (exit 12).
    let ws = Workspace::init();
    let (old, object) = forgotten_snapshot(&ws);
    let prune = paused_prune(&ws, "rechecked");
    fs::write(ws.repo.join("snapshots").join(&old), object).unwrap();
    let out = resume(&ws, "rechecked", prune);
    // --json: the error is a JSON object on stdout.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(err.contains(&old[..8]) && err.contains("damaged"), "{err}");
    assert_eq!(count(&ws.repo, "tombstones"), 0, "prune itself finished");
    assert_eq!(count(&ws.repo, "locks"), 0);
}

/// Two snapshots sharing a pack: the first has `keep.bin` and `drop.bin`,
/// the second `keep.bin` only; the first is forgotten, so the pack is about
/// half garbage. Returns the kept snapshot's id.
fn half_garbage_pack(ws: &Workspace) -> String {
    write_file(
        &ws.path("src/keep.bin"),
        &pseudo_random(1 << 20, 21),
        0o644,
        T0,
    );
    write_file(
        &ws.path("src/drop.bin"),
        &pseudo_random(1 << 20, 22),
        0o644,
        T0,
    );
    ws.backup(&["src"]);
    fs::remove_file(ws.path("src/drop.bin")).unwrap();
    let keep = backup_and_remember(ws, "src");
    ws.run(&["forget", "--keep-last", "1"]).ok();
    keep
}

#[test]
fn repack_rewrites_mostly_garbage_packs_and_the_content_is_unchanged() {
    let ws = Workspace::init();
    let keep = half_garbage_pack(&ws);
    let bytes_before: u64 = packs(&ws.repo).iter().map(|p| p.2).sum();
    // At 100% nothing is repacked: the pack is kept whole and reported.
    let whole = ws.run(&["--json", "prune", "--dry-run", "--repack-threshold", "100"]);
    whole.ok();
    let w = whole.json();
    assert_eq!(
        (
            w["repacked_packs"].as_u64(),
            w["partly_used_packs"].as_u64()
        ),
        (Some(0), Some(1)),
        "{w}"
    );
    // The default (10%) repacks it; the dry run says what and changes nothing.
    let dry = ws.run(&["prune", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stdout.contains("would repack 1 pack(s)"),
        "{}",
        dry.stdout
    );
    let d = ws.run(&["--json", "prune", "--dry-run"]).json();
    assert_eq!(d["repacked_packs"], 1, "{d}");
    assert!(d["repack_bytes_freed"].as_u64().unwrap() >= 1 << 20, "{d}");
    assert_eq!(
        packs(&ws.repo).iter().map(|p| p.2).sum::<u64>(),
        bytes_before
    );

    let r = ws.run(&["--json", "prune"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["repacked_packs"], 1, "{v}");
    assert!(v["repacked_blobs"].as_u64().unwrap() >= 1, "{v}");
    let bytes_after: u64 = packs(&ws.repo).iter().map(|p| p.2).sum();
    assert!(
        bytes_after + (1 << 20) <= bytes_before,
        "repack freed the garbage: {bytes_before} -> {bytes_after}"
    );
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    verify_read_data(&ws);
    assert_all_restore(&ws);
    assert_eq!(ws.snapshots()[0]["id"], keep.as_str());
    // Nothing left to repack.
    let again = ws.run(&["--json", "prune", "--dry-run"]).json();
    assert_eq!(
        (
            again["repacked_packs"].as_u64(),
            again["partly_used_packs"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
}

#[test]
fn a_prune_killed_during_repack_leaves_a_repository_the_next_prune_finishes() {
    let ws = Workspace::init();
    half_garbage_pack(&ws);
    // Killed after the new packs and their index file are written, before
    // the old index files are rewritten: every blob is listed twice.
    let mut prune = paused_prune(&ws, "repacked");
    prune.kill().unwrap();
    prune.wait().unwrap();
    assert_eq!(count(&ws.repo, "tombstones"), 1);
    verify_read_data(&ws);
    assert_all_restore(&ws);
    ws.run(&["prune"]).ok();
    assert_eq!(count(&ws.repo, "tombstones"), 0);
    assert_eq!(count(&ws.repo, "locks"), 0);
    verify_read_data(&ws);
    assert_all_restore(&ws);
    let v = ws.run(&["--json", "prune", "--dry-run"]).json();
    assert_eq!(
        (
            v["repacked_packs"].as_u64(),
            v["unreferenced_packs"].as_u64(),
            v["orphan_packs"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{v}"
    );
}

#[test]
fn a_backup_during_repack_stays_whole() {
    let ws = Workspace::init();
    half_garbage_pack(&ws);
    // The backup runs between the mark and the copy: it shares keep.bin
    // with the pack being repacked and adds its own data.
    let prune = paused_prune(&ws, "marked");
    write_file(
        &ws.path("src/new.bin"),
        &pseudo_random(1 << 20, 23),
        0o644,
        T0,
    );
    backup_and_remember(&ws, "src");
    let out = resume(&ws, "marked", prune);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repacked_packs"], 1, "{v}");
    verify_read_data(&ws);
    assert_all_restore(&ws);
    // And one racing a repack at random points.
    for trial in 0..2u64 {
        write_file(
            &ws.path(format!("src/drop{trial}.bin")),
            &pseudo_random(1 << 20, 30 + trial),
            0o644,
            T0,
        );
        ws.backup(&["src"]);
        fs::remove_file(ws.path(format!("src/drop{trial}.bin"))).unwrap();
        write_file(
            &ws.path(format!("src/more{trial}.bin")),
            &pseudo_random(4 << 20, 40 + trial),
            0o644,
            T0,
        );
        let mut backup = spawn(&ws, &["--json", "backup", "src"]);
        ws.run(&["forget", "--keep-last", "1"]).ok();
        std::thread::sleep(jitter(trial, 800));
        let prune = ws.run(&["prune"]);
        assert!(
            backup.wait().unwrap().success(),
            "backup failed during repack"
        );
        prune.ok();
        let latest = ws.snapshots().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        if !ws.path(format!("expected/{latest}")).exists() {
            remember(&ws, "src", &latest);
        }
        ws.run(&["forget", "--keep-last", "1"]).ok();
        verify_read_data(&ws);
        assert_all_restore(&ws);
    }
}
