//! End-to-end tests of the repository under concurrent and interrupted
//! writers: backup locks (present while a backup runs, gone after success
//! and failure, stale after kill -9), verify and `restore latest` racing
//! backups in other processes, an unreadable newest snapshot, stale temp
//! files, orphan packs, and small configuration fixes.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// An mtime in the past, so restored mtimes cannot come from "now".
const T0: u64 = 1_614_830_400;

/// Files in `repo/<dir>/` (not recursive, temp files excluded).
fn objects(repo: &Path, dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(repo.join(dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    !p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".tmp-")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether a complete pack (not a temp file) exists; tolerant of a writer
/// changing the directories meanwhile.
fn packs_exist(repo: &Path) -> bool {
    let Ok(dirs) = fs::read_dir(repo.join("data")) else {
        return false;
    };
    dirs.flatten().any(|d| {
        let rel = format!("data/{}", d.file_name().to_string_lossy());
        !objects(repo, &rel).is_empty()
    })
}

/// A source big enough that a backup of it takes a while (64 MiB random).
fn big_source(ws: &Workspace) -> PathBuf {
    let src = ws.path("big");
    for i in 0..4u64 {
        write_file(
            &src.join(format!("part-{i}.bin")),
            &pseudo_random(16 << 20, 500 + i),
            0o644,
            T0,
        );
    }
    src
}

/// Start `backup SRC` in the background.
fn spawn_backup(ws: &Workspace, src: &Path) -> Child {
    ws.cmd()
        .args(["--quiet", "backup"])
        .arg(src)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup")
}

/// Poll until `cond` holds while `child` runs; `false` if the child ended first.
fn wait_while_running(child: &mut Child, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if child.try_wait().expect("poll child").is_some() {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills a child on drop, so a failing assertion leaves no process behind.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- locks

/// While a backup runs, `locks/` holds one plain-JSON lock naming it
/// (kind, host, pid, start, heartbeat); after the backup it is gone.
#[test]
fn a_backup_holds_a_lock_while_it_runs_and_removes_it_after_success() {
    let ws = Workspace::init();
    let src = big_source(&ws);
    let mut guard = KillOnDrop(Some(spawn_backup(&ws, &src)));
    let child = guard.0.as_mut().unwrap();
    let pid = child.id();
    let seen = wait_while_running(child, || !objects(&ws.repo, "locks").is_empty());
    assert!(seen, "no lock appeared while the backup ran");
    let locks = objects(&ws.repo, "locks");
    assert_eq!(locks.len(), 1, "{locks:?}");
    let name = locks[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), 64, "locks/<64 hex>: {name}");
    let lock: serde_json::Value = serde_json::from_slice(&fs::read(&locks[0]).unwrap()).unwrap();
    assert_eq!(lock["kind"], "backup", "{lock}");
    assert_eq!(lock["pid"], pid, "{lock}");
    assert_eq!(lock["version"], 1, "{lock}");
    assert!(lock["heartbeat"].as_str().is_some() && lock["started"].as_str().is_some());
    let status = guard.0.take().unwrap().wait_with_output().unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(
        objects(&ws.repo, "locks").is_empty(),
        "the lock must be removed after the backup"
    );
    assert_eq!(ws.snapshots().len(), 1);
}

/// A backup that fails (the repository's disk fills up) removes its lock too.
#[test]
fn a_failed_backup_removes_its_lock() {
    let Some(tmpfs) = tmpfs_or_skip("a_failed_backup_removes_its_lock", "6m") else {
        return;
    };
    let ws = Workspace::new();
    let repo = tmpfs.path.join("repo");
    ws.run_on(&repo, &["init"]).ok();
    let big = ws.path("big");
    for i in 0..4u64 {
        write_file(
            &big.join(format!("{i}.bin")),
            &pseudo_random(3 << 20, 70 + i),
            0o644,
            T0,
        );
    }
    let mut c = ws.cmd();
    c.env("LIFEBOAT_REPOSITORY", &repo)
        .args(["--quiet", "backup"])
        .arg(&big)
        .stderr(Stdio::piped());
    let mut guard = KillOnDrop(Some(c.spawn().unwrap()));
    let child = guard.0.as_mut().unwrap();
    let seen = wait_while_running(child, || !objects(&repo, "locks").is_empty());
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(17), "{out:?}");
    assert!(seen, "the failing backup held no lock");
    assert!(
        objects(&repo, "locks").is_empty(),
        "the lock of a failed backup must be removed: {:?}",
        objects(&repo, "locks")
    );
}

/// kill -9 leaves the lock behind with the dead process's pid; nothing
/// refreshes it, so once its heartbeat is older than the stale age verify
/// calls it stale. The packs it wrote are reported as orphans prune will
/// reclaim, and the repository is not damaged.
#[test]
fn a_lock_left_by_kill_9_goes_stale_and_its_packs_are_orphans() {
    let ws = Workspace::init();
    let src = big_source(&ws);
    let mut guard = KillOnDrop(Some(spawn_backup(&ws, &src)));
    let child = guard.0.as_mut().unwrap();
    let pid = child.id();
    let ready = wait_while_running(child, || {
        packs_exist(&ws.repo) && !objects(&ws.repo, "locks").is_empty()
    });
    assert!(ready, "the backup ended before writing a pack");
    child.kill().unwrap();
    child.wait().unwrap();
    guard.0 = None;
    assert!(
        ws.snapshots().is_empty(),
        "a killed backup leaves no snapshot"
    );
    let locks = objects(&ws.repo, "locks");
    assert_eq!(locks.len(), 1, "kill -9 cannot remove the lock");
    let mut lock: serde_json::Value =
        serde_json::from_slice(&fs::read(&locks[0]).unwrap()).unwrap();
    assert_eq!(lock["pid"], pid);

    let r = ws.run(&["verify"]);
    r.ok();
    assert!(r.stdout.contains("a backup is running"), "{}", r.stdout);
    assert!(
        r.stdout.contains("orphan pack") && r.stdout.contains("prune` will reclaim"),
        "{}",
        r.stdout
    );
    let (code, report) = ws.verify(&[]);
    assert_eq!(code, 0, "{report}");
    let orphans = report["report"]["unindexed_pack_keys"].as_array().unwrap();
    assert!(!orphans.is_empty(), "{report}");
    for o in orphans {
        assert!(ws.repo.join(o.as_str().unwrap()).is_file(), "{o}");
    }
    assert_eq!(report["locks"][0]["stale"], false, "{report}");

    // Sixteen minutes pass without a heartbeat (nobody is left to refresh it).
    let aged = SystemTime::now() - Duration::from_secs(16 * 60);
    let aged_ts = jiff::Timestamp::try_from(aged).unwrap().to_string();
    lock["heartbeat"] = aged_ts.into();
    fs::write(&locks[0], serde_json::to_vec(&lock).unwrap()).unwrap();
    fs::File::options()
        .write(true)
        .open(&locks[0])
        .unwrap()
        .set_modified(aged)
        .unwrap();
    let (code, report) = ws.verify(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["locks"][0]["stale"], true, "{report}");
    let r = ws.run(&["verify"]);
    assert!(
        r.stdout.contains("stale, its backup is gone"),
        "{}",
        r.stdout
    );
    // Orphans are reported, never deleted by verify or backup.
    ws.backup(&[ws.path("big").to_str().unwrap()]);
    for o in orphans {
        assert!(ws.repo.join(o.as_str().unwrap()).is_file(), "{o}");
    }
}

// ---------------------------------------------------------------- temp files

/// A backup removes temp files a killed writer left more than a day ago,
/// and keeps a fresh one (another process may be writing it).
#[test]
fn backup_removes_stale_temp_files_and_keeps_fresh_ones() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("a.txt"), b"a", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let old_secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 25 * 3600;
    let stale_pack = packs(&ws.repo)[0].1.with_file_name(".tmp-5f3a9c0de1");
    let stale_top = ws.repo.join("index/.tmp-1-0");
    let fresh = ws.repo.join("snapshots/.tmp-being-written");
    for p in [&stale_pack, &stale_top] {
        write_file(p, b"half-written", 0o600, old_secs);
    }
    fs::write(&fresh, b"in progress").unwrap();
    write_file(&src.join("b.txt"), b"b", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    assert!(
        !stale_pack.exists() && !stale_top.exists(),
        "stale temp files remain"
    );
    assert!(fresh.exists(), "a fresh temp file must be kept");
    let (code, report) = ws.verify(&[]);
    assert_eq!(code, 0, "{report}");
}

// ---------------------------------------------------------------- restore latest

/// `restore latest` with an unreadable newest snapshot fails with exit 12
/// naming it, instead of silently restoring an older one; with
/// `--skip-damaged` it restores the newest readable snapshot with a warning.
#[test]
fn restore_latest_refuses_an_unreadable_snapshot_unless_skip_damaged() {
    let ws = Workspace::init();
    let src = ws.path("app");
    write_file(&src.join("v.txt"), b"version one", 0o644, T0);
    ws.backup(&[src.to_str().unwrap(), "--time", "2026-01-01T00:00:00Z"]);
    write_file(&src.join("v.txt"), b"version two", 0o644, T0);
    let newest = ws.backup(&[src.to_str().unwrap(), "--time", "2026-01-02T00:00:00Z"]);
    let newest_id = newest["id"].as_str().unwrap().to_string();
    flip_byte(&ws.repo.join("snapshots").join(&newest_id), 30);

    let out = ws.path("out");
    let line = ws
        .run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .error(12, &[&newest_id, "--skip-damaged"]);
    assert!(line.contains("cannot be read"), "{line}");
    assert!(!out.exists(), "nothing may be restored");

    let r = ws.run(&[
        "restore",
        "latest",
        "--to",
        out.to_str().unwrap(),
        "--skip-damaged",
    ]);
    r.ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains(&newest_id),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read(out.join("app/v.txt")).unwrap(), b"version one");
}

// ---------------------------------------------------------------- concurrency

/// What backup `k` of source `s` stores: a version file and a 300 KiB file.
fn write_version(dir: &Path, s: u64, k: u64) {
    write_file(&dir.join("version"), k.to_string().as_bytes(), 0o644, T0);
    write_file(
        &dir.join("data.bin"),
        &pseudo_random(300 << 10, s * 1000 + k),
        0o644,
        T0 + k,
    );
}

/// Check a restored source dir is exactly one version of what was backed up.
fn check_version(dir: &Path, s: u64) {
    let k: u64 = fs::read_to_string(dir.join("version"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .parse()
        .unwrap();
    assert_eq!(
        fs::read(dir.join("data.bin")).unwrap(),
        pseudo_random(300 << 10, s * 1000 + k),
        "restored data of source {s} version {k} differs"
    );
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data.bin", "version"]);
}

/// A small deterministic generator for jitter (seeded per run, printed).
struct Jitter(u64);

impl Jitter {
    fn sleep(&mut self, max_ms: u64) {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        std::thread::sleep(Duration::from_millis(self.0 % (max_ms + 1)));
    }
}

/// Verify and `restore latest` run over and over while two other processes
/// keep backing up (new packs, index files and snapshots appear at random
/// moments): verify never reports damage and every restore is complete and
/// byte-identical to one backed-up version.
#[test]
fn verify_and_restore_latest_never_report_false_damage_while_backups_run() {
    let ws = Workspace::init();
    let key = ws.path("raw.key");
    ws.run(&["key", "export", "-o", key.to_str().unwrap()]).ok();
    let with_key = |c: &mut Command| {
        c.env("LIFEBOAT_KEY_FILE", &key);
    };
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("jitter seed {seed}");
    const BACKUPS: u64 = 20;
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for s in 1..=2u64 {
            let (ws, done) = (&ws, &done);
            scope.spawn(move || {
                let dir = ws.path(format!("src{s}"));
                let mut jitter = Jitter(seed.wrapping_mul(s + 7) | 1);
                for k in 0..BACKUPS {
                    write_version(&dir, s, k);
                    ws.run_with(&["--quiet", "backup", dir.to_str().unwrap()], with_key)
                        .ok();
                    jitter.sleep(40);
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let mut jitter = Jitter(seed);
        let mut trials = 0;
        while done.load(std::sync::atomic::Ordering::SeqCst) < 2 || trials < 4 {
            trials += 1;
            // --read-data widens the gap between loading the index and
            // listing the snapshots, where the old order went wrong.
            let verify: &[&str] = if trials % 2 == 0 {
                &["--json", "verify", "--read-data"]
            } else {
                &["--json", "verify"]
            };
            let r = ws.run_with(verify, with_key);
            assert_eq!(
                r.code,
                0,
                "trial {trial}: verify reported damage while backups ran:\n{}\n{}",
                r.stdout,
                r.stderr,
                trial = trials
            );
            jitter.sleep(30);
            let out = ws.path(format!("out-{trials}"));
            let r = ws.run_with(
                &[
                    "--quiet",
                    "restore",
                    "latest",
                    "--to",
                    out.to_str().unwrap(),
                ],
                with_key,
            );
            if r.code == 18 && r.stderr.contains("no snapshots yet") {
                continue;
            }
            assert_eq!(
                r.code, 0,
                "trial {trials}: restore latest failed while backups ran:\n{}\n{}",
                r.stdout, r.stderr
            );
            let restored: Vec<_> = fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(restored.len(), 1, "{restored:?}");
            let name = restored[0].to_string_lossy().into_owned();
            let s: u64 = name.trim_start_matches("src").parse().unwrap();
            check_version(&out.join(&name), s);
            fs::remove_dir_all(&out).unwrap();
            jitter.sleep(30);
        }
        println!(
            "{trials} verify + restore trials against {} backups",
            2 * BACKUPS
        );
    });
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(ws.snapshots().len() as u64, 2 * BACKUPS);
}

// ---------------------------------------------------------------- small ones

/// With `--config` (no password in it), the documented `LIFEBOAT_PASSWORD`
/// is used; it also wins over the config's `password_file`.
#[test]
fn lifeboat_password_works_with_a_config_file() {
    let ws = Workspace::init();
    let cfg = ws.path("lifeboat.toml");
    fs::write(
        &cfg,
        format!("[repository]\nurl = {:?}\n", ws.repo.display().to_string()),
    )
    .unwrap();
    let password = fs::read_to_string(&ws.pass).unwrap().trim().to_string();
    let run = |cfg: &Path| {
        let mut c = bare_cmd();
        c.current_dir(ws.tmp.path())
            .env("LIFEBOAT_PASSWORD", &password)
            .args(["--config", cfg.to_str().unwrap(), "--json", "snapshots"]);
        let what = "lifeboat --config snapshots".to_string();
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&cfg);
    let wrong = ws.password_file("wrong-pass", "not the password");
    let cfg2 = ws.path("lifeboat2.toml");
    fs::write(
        &cfg2,
        format!(
            "[repository]\nurl = {:?}\npassword_file = {:?}\n",
            ws.repo.display().to_string(),
            wrong.display().to_string()
        ),
    )
    .unwrap();
    run(&cfg2);
}

/// `--repo r` (a bare relative name) works for init and later commands.
#[test]
fn a_bare_relative_repository_name_works() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write_file(&src.join("f"), b"relative", 0o644, T0);
    let run = |args: &[&str]| {
        let mut c = ws.cmd();
        c.env_remove("LIFEBOAT_REPOSITORY");
        run_cmd(c, args)
    };
    run(&["--repo", "r", "init"]).ok();
    assert!(ws.path("r/config").is_file());
    run(&["--repo", "r", "backup", src.to_str().unwrap()]).ok();
    let out = ws.path("out");
    run(&[
        "--repo",
        "r",
        "restore",
        "latest",
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(fs::read(out.join("src/f")).unwrap(), b"relative");
}

/// One unreadable `verifications/` record is a warning in `snapshots`,
/// which still lists every snapshot.
#[test]
fn a_damaged_verification_record_does_not_break_snapshots() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("f"), b"x", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let name = "ab".repeat(32);
    write_file(
        &ws.repo.join("verifications").join(&name),
        b"not a sealed record",
        0o600,
        T0,
    );
    let r = ws.run(&["--json", "snapshots"]);
    r.ok();
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains(&name),
        "{}",
        r.stderr
    );
    let r = ws.run(&["snapshots"]);
    r.ok();
    assert!(r.stdout.contains("1 snapshot(s)"), "{}", r.stdout);
}
