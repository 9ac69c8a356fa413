//! End-to-end tests of restore fidelity and atomic, resumable restore for
//! the files source: hardlinks, sparse files, owners, extended attributes
//! and POSIX ACLs round trip (checked with the tree comparison and with
//! `diff -r`, `stat` and `du`); a file changing while it is read is
//! reported; a restore killed at random points never leaves a cut-short
//! file under its real name, and the next restore completes the target.
//!
//! Prerequisites a test cannot set up (root for owners, `user.*` xattrs on
//! the test filesystem) fail the test under `CI=true` and are reported as
//! `SKIPPED` on stderr otherwise.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An mtime in the past (2021-03-04).
const T0: u64 = 1_614_830_400;

/// The temporary-name prefix and the marker a restore uses (docs/CLI.md).
const TEMP_PREFIX: &str = ".lifeboat-restore-";
const MARKER: &str = ".lifeboat-restore-in-progress";

/// Whether a prerequisite holds; without it the test fails under CI and
/// reports itself skipped otherwise (the caller returns on `false`).
fn prerequisite(ok: bool, test: &str, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: prerequisite missing under CI: {what}"
        );
        eprintln!("SKIPPED {test}: {what}");
    }
    ok
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// POSIX ACL in the kernel's xattr format (version 2, then tag/perm/id
/// entries, sorted by tag): owner rwx, user `uid` r-x, group r--, mask r-x,
/// other ---.
fn acl(uid: u32) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 7, UNDEFINED), // ACL_USER_OBJ
        (0x02, 5, uid),       // ACL_USER
        (0x04, 4, UNDEFINED), // ACL_GROUP_OBJ
        (0x10, 5, UNDEFINED), // ACL_MASK
        (0x20, 0, UNDEFINED), // ACL_OTHER
    ];
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// A 10 MiB file with 4 KiB of data at 0 and at 5 MiB, holes elsewhere
/// (also at the end).
fn write_sparse(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(&pseudo_random(4096, 11)).unwrap();
    f.seek(SeekFrom::Start(5 << 20)).unwrap();
    f.write_all(&pseudo_random(4096, 12)).unwrap();
    f.set_len(10 << 20).unwrap();
}

/// The tree below `parent/app`: two hardlink groups (three paths across
/// directories, and two in `grp/`), a sparse file, xattrs and ACLs on files
/// and directories, and (as root) owners on files, a directory and a symlink.
fn fidelity_tree(parent: &Path, with_owners: bool, with_xattrs: bool) -> PathBuf {
    let app = parent.join("app");
    write_file(&app.join("a.txt"), &pseudo_random(3 << 20, 1), 0o640, T0);
    fs::create_dir_all(app.join("sub")).unwrap();
    fs::hard_link(app.join("a.txt"), app.join("sub/a-link.txt")).unwrap();
    fs::hard_link(app.join("a.txt"), app.join("z-link.txt")).unwrap();
    write_file(&app.join("grp/one"), b"linked twice\n", 0o600, T0 + 1);
    fs::hard_link(app.join("grp/one"), app.join("grp/two")).unwrap();
    write_sparse(&app.join("sparse.img"));
    set_mtime(&app.join("sparse.img"), T0 + 2, 0);
    write_file(&app.join("plain.txt"), b"no links\n", 0o644, T0 + 3);
    symlink("plain.txt", app.join("link")).unwrap();
    if with_xattrs {
        xattr::set(app.join("plain.txt"), "user.comment", b"kept \x00\xff").unwrap();
        xattr::set(app.join("sub"), "user.role", b"config").unwrap();
        xattr::set(app.join("plain.txt"), "system.posix_acl_access", &acl(4242)).unwrap();
        xattr::set(app.join("sub"), "system.posix_acl_default", &acl(4343)).unwrap();
    }
    if with_owners {
        lchown(app.join("plain.txt"), Some(1234), Some(5678)).unwrap();
        lchown(app.join("a.txt"), Some(2000), Some(2001)).unwrap();
        lchown(app.join("grp"), Some(3000), Some(3001)).unwrap();
        lchown(app.join("link"), Some(4321), Some(8765)).unwrap();
        xattr::set(app.join("link"), "trusted.lifeboat", b"on a symlink").unwrap();
    }
    set_symlink_mtime(&app.join("link"), T0 + 4, 0);
    for (d, t) in [("sub", T0 + 5), ("grp", T0 + 6), ("", T0 + 7)] {
        set_mtime(&app.join(d), t, 0);
    }
    app
}

/// Per entry: xattrs, link count, allocated blocks (files), and which
/// entries share an inode (as the smallest path of the group).
fn fidelity_facts(root: &Path) -> BTreeMap<String, String> {
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for rel in snapshot_tree(root).into_keys() {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(std::ffi::OsStr::from_bytes(&rel))
        };
        let m = fs::symlink_metadata(&p).unwrap();
        let group = inodes.entry((m.dev(), m.ino())).or_insert(rel.clone());
        let mut attrs: Vec<(String, Vec<u8>)> = xattr::list(&p)
            .unwrap()
            .map(|n| {
                let v = xattr::get(&p, &n).unwrap().unwrap_or_default();
                (n.to_string_lossy().into_owned(), v)
            })
            .collect();
        attrs.sort();
        let blocks = if m.is_file() { m.blocks() } else { 0 };
        let facts = format!(
            "links {} blocks {blocks} inode-group {:?} xattrs {attrs:?}",
            m.nlink(),
            String::from_utf8_lossy(group)
        );
        out.insert(String::from_utf8_lossy(&rel).into_owned(), facts);
    }
    out
}

/// Output of a command run in `dir`, with `dir` itself not in it.
fn run_in(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.join("\n")
}

/// `stat` (everything but the inode number and times other than mtime;
/// directory sizes depend on their history), `du` of files and `diff -r`
/// agree between the two trees.
#[track_caller]
fn assert_stat_du_diff_agree(original: &Path, restored: &Path) {
    let files = ["-H", ".", "!", "-type", "d", "-exec"];
    let stat_files = |d: &Path| {
        let mut a = files.to_vec();
        a.extend_from_slice(&["stat", "-c", "%n %F %s %b %a %u %g %h %Y", "{}", "+"]);
        run_in(d, "find", &a)
    };
    let stat_dirs = |d: &Path| {
        run_in(
            d,
            "find",
            &[
                ".",
                "-type",
                "d",
                "-exec",
                "stat",
                "-c",
                "%n %F %a %u %g %Y",
                "{}",
                "+",
            ],
        )
    };
    let du_files = |d: &Path| {
        let mut a = files.to_vec();
        a.extend_from_slice(&["du", "-l", "-B1", "{}", "+"]);
        run_in(d, "find", &a)
    };
    assert_eq!(stat_files(original), stat_files(restored), "stat of files");
    assert_eq!(
        stat_dirs(original),
        stat_dirs(restored),
        "stat of directories"
    );
    assert_eq!(du_files(original), du_files(restored), "du of files");
    let st = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(original)
        .arg(restored)
        .output()
        .expect("run diff");
    assert!(
        st.status.success(),
        "diff -r: {}",
        String::from_utf8_lossy(&st.stdout)
    );
}

/// Whether `user.*` xattrs can be set in the workspace's filesystem.
fn user_xattrs_work(ws: &Workspace) -> bool {
    let probe = ws.path("xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

#[test]
fn hardlinks_sparse_files_owners_and_xattrs_round_trip_and_stat_du_diff_agree() {
    let test = "hardlinks_sparse_files_owners_and_xattrs_round_trip";
    let ws = Workspace::init();
    let owners = prerequisite(is_root(), test, "not root: owners are not restored");
    let xattrs = prerequisite(
        user_xattrs_work(&ws),
        test,
        "the test filesystem does not take user.* xattrs",
    );
    let app = fidelity_tree(&ws.path("src"), owners, xattrs);
    let sparse_blocks = fs::metadata(app.join("sparse.img")).unwrap().blocks();
    assert!(sparse_blocks * 512 <= 64 << 10, "source must be sparse");
    let b = ws.backup(&[app.to_str().unwrap()]);
    assert_eq!(b["warnings"], serde_json::json!([]), "{b}");
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    let restored = out.join("app");
    assert_same_tree(&app, &restored);
    assert_eq!(fidelity_facts(&app), fidelity_facts(&restored));
    assert_stat_du_diff_agree(&app, &restored);
    let m = fs::metadata(restored.join("sparse.img")).unwrap();
    assert_eq!((m.len(), m.blocks()), (10 << 20, sparse_blocks));
    let a = fs::metadata(restored.join("a.txt")).unwrap();
    let l = fs::metadata(restored.join("sub/a-link.txt")).unwrap();
    assert_eq!(
        (a.ino(), a.nlink()),
        (l.ino(), 3),
        "hardlinks come back linked"
    );
    if owners {
        let link = fs::symlink_metadata(restored.join("link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (4321, 8765), "symlink owner");
    }
    if xattrs {
        assert_eq!(
            xattr::get(restored.join("plain.txt"), "system.posix_acl_access").unwrap(),
            Some(acl(4242))
        );
    }
    // Every entry under its final name: no temporary names, no marker.
    let names: Vec<String> = files_below(&out);
    assert!(
        names
            .iter()
            .all(|n| !n.contains(TEMP_PREFIX) && !n.ends_with(MARKER)),
        "{names:?}"
    );
}

#[test]
fn hardlinks_are_linked_within_the_restored_subset_and_copies_outside_it() {
    let ws = Workspace::init();
    let app = fidelity_tree(&ws.path("src"), false, false);
    ws.backup(&[app.to_str().unwrap()]);
    let out = ws.path("out");
    ws.run(&[
        "restore",
        "latest",
        "--to",
        out.to_str().unwrap(),
        "--path",
        "app/grp",
        "--path",
        "app/sub",
    ])
    .ok();
    let one = fs::metadata(out.join("grp/one")).unwrap();
    let two = fs::metadata(out.join("grp/two")).unwrap();
    assert_eq!((one.ino(), one.nlink()), (two.ino(), 2));
    assert_eq!(fs::read(out.join("grp/two")).unwrap(), b"linked twice\n");
    // Only one path of a.txt's group is in the subset: a plain file.
    let lone = fs::metadata(out.join("sub/a-link.txt")).unwrap();
    assert_eq!(lone.nlink(), 1);
    assert_eq!(
        fs::read(out.join("sub/a-link.txt")).unwrap(),
        fs::read(app.join("a.txt")).unwrap()
    );
}

// ------------------------------------------------------- changing files

/// Until `stop`, change `path` every millisecond: append 4 KiB, or
/// (`in_place`) rewrite its first 4 KiB, keeping its size.
fn busy_writer(
    path: PathBuf,
    in_place: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut round = 0u8;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = if in_place {
                SeekFrom::Start(0)
            } else {
                SeekFrom::End(0)
            };
            f.seek(at).unwrap();
            f.write_all(&[round; 4096]).unwrap();
            round = round.wrapping_add(1);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    })
}

#[test]
fn files_changed_during_backup_are_reported_listed_in_the_snapshot_and_exit_3() {
    let ws = Workspace::init();
    let src = ws.path("src/app");
    write_file(&src.join("quiet.txt"), b"unchanged\n", 0o644, T0);
    let appended = src.join("appended.log");
    let rewritten = src.join("rewritten.db");
    write_file(&appended, &pseudo_random(40 << 20, 3), 0o644, T0);
    write_file(&rewritten, &pseudo_random(40 << 20, 4), 0o644, T0);
    // Writers change both files until the backup is over; the backup starts
    // once each has written, so both change while they are read (the
    // rewritten one keeps its size: only mtime and ctime tell).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = [
        busy_writer(appended.clone(), false, stop.clone()),
        busy_writer(rewritten.clone(), true, stop.clone()),
    ];
    let mtime = |p: &Path| fs::metadata(p).unwrap().mtime();
    while mtime(&appended) == T0 as i64 || mtime(&rewritten) == T0 as i64 {
        std::thread::yield_now();
    }
    let r = ws.run(&["--json", "backup", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    r.code(3);
    let v = r.json();
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{v}");
    for (w, p) in warnings.iter().zip([&appended, &rewritten]) {
        assert!(
            w.contains(p.to_str().unwrap()) && w.contains("changed while being read"),
            "{w}"
        );
    }
    assert_eq!(
        v["snapshot"]["meta"]["changed_files"],
        serde_json::json!([appended.to_str().unwrap(), rewritten.to_str().unwrap()])
    );
    // The next backup reads both again (their metadata no longer matches
    // the stored nodes) and, the files now quiet, is clean and restores.
    let b = ws.backup(&[src.to_str().unwrap()]);
    assert_eq!(b["warnings"], serde_json::json!([]), "{b}");
    assert_eq!(
        b["snapshot"]["meta"]["changed_files"],
        serde_json::json!([])
    );
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_same_tree(&src, &out.join("app"));
}

// ------------------------------------------------------- atomic restore

/// Many files of mixed sizes (some spanning several chunks), so a restore
/// takes long enough to be killed in the middle.
fn many_files(parent: &Path) -> PathBuf {
    let app = parent.join("app");
    for i in 0..60u64 {
        let size = match i % 6 {
            0 => 4 << 20,
            1 => 1 << 20,
            2 => 300 << 10,
            _ => 5000 + i as usize * 37,
        };
        let dir = app.join(format!("d{}", i % 5));
        write_file(
            &dir.join(format!("f{i:02}.bin")),
            &pseudo_random(size, 100 + i),
            0o640,
            T0 + i,
        );
    }
    for d in 0..5 {
        set_mtime(&app.join(format!("d{d}")), T0 + 100 + d, 0);
    }
    set_mtime(&app, T0 + 200, 0);
    app
}

/// Entries below `target` that are a temporary name or the marker.
fn leftovers(target: &Path) -> Vec<String> {
    if !target.exists() {
        return Vec::new();
    }
    snapshot_tree(target)
        .into_keys()
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .filter(|k| k.contains(TEMP_PREFIX))
        .collect()
}

/// Assert every file under its final name below `target/app` is whole (the
/// source's bytes); returns how many of the source's files are missing.
#[track_caller]
fn assert_no_partial_file(src: &Path, target: &Path) -> usize {
    let want = contents(src);
    let app = target.join("app");
    if !app.exists() {
        return want.len();
    }
    let mut present = 0;
    for (rel, bytes) in contents(&app) {
        let name = String::from_utf8_lossy(&rel).into_owned();
        if name.rsplit('/').next().unwrap().starts_with(TEMP_PREFIX) {
            continue;
        }
        let expected = want
            .get(&rel)
            .unwrap_or_else(|| panic!("{name}: not in the source"));
        assert!(
            &bytes == expected,
            "{name}: {} bytes under its final name, the source has {}",
            bytes.len(),
            expected.len()
        );
        present += 1;
    }
    want.len() - present
}

#[test]
fn killed_restores_never_leave_a_partial_file_and_the_next_restore_completes() {
    let ws = Workspace::init();
    let src = many_files(&ws.path("src"));
    ws.backup(&[src.to_str().unwrap()]);
    // How long opening the repository (the KDF) and a whole restore take
    // here sizes the random kill delays: between the two, files are written.
    let started = std::time::Instant::now();
    ws.run(&["snapshots"]).ok();
    let open = started.elapsed();
    let probe = ws.path("probe");
    let started = std::time::Instant::now();
    ws.run(&["restore", "latest", "--to", probe.to_str().unwrap()])
        .ok();
    let full = started.elapsed();
    let writing = full.saturating_sub(open);
    let mut rng = pseudo_random(64, u64::from(std::process::id()));
    let mut mid_way = 0;
    // At least 8 trials, more (up to 24) until one kill landed mid-way.
    for trial in 0..24 {
        if trial >= 8 && mid_way > 0 {
            break;
        }
        let target = ws.path(format!("t{trial}"));
        let mut child = ws
            .cmd()
            .args(["restore", "latest", "--to", target.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = open + writing.mul_f64(f64::from(rng[trial]) / 255.0);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let missing = assert_no_partial_file(&src, &target);
        let unfinished = target.join(MARKER).exists();
        if missing > 0 && unfinished {
            mid_way += 1;
        }
        eprintln!(
            "trial {trial}: killed after {delay:?} of {full:?}: {missing} files missing, marker {unfinished}, {} temporary leftovers",
            leftovers(&target).len()
        );
        // The same restore again, without --force, completes the target
        // (a restore that had finished left no marker: it is complete).
        if missing > 0 || target.join(MARKER).exists() {
            let r = ws.run(&["restore", "latest", "--to", target.to_str().unwrap()]);
            r.ok();
        }
        assert_same_tree(&src, &target.join("app"));
        assert_eq!(leftovers(&target), Vec::<String>::new());
        assert!(!target.join(MARKER).exists());
        rng.rotate_left(1);
    }
    assert!(
        mid_way > 0,
        "no kill landed in the middle of a restore ({full:?} for a whole one)"
    );
}

#[test]
fn resume_removes_leftovers_keeps_finished_files_and_another_snapshot_is_refused() {
    let ws = Workspace::init();
    let src = many_files(&ws.path("src"));
    let first = ws.backup(&[src.to_str().unwrap()]);
    let id = first["id"].as_str().unwrap().to_string();
    let target = ws.path("target");
    ws.run(&["restore", &id, "--to", target.to_str().unwrap()])
        .ok();
    // What a killed restore leaves: the marker, a cut-short temporary file
    // and a missing file.
    let marker = serde_json::json!({"snapshot": id, "paths": []});
    fs::write(target.join(MARKER), marker.to_string()).unwrap();
    let leftover = target.join("app/d1").join(format!("{TEMP_PREFIX}abc123"));
    fs::write(&leftover, b"cut short").unwrap();
    fs::remove_file(target.join("app/d0/f00.bin")).unwrap();
    let kept = target.join("app/d2/f02.bin");
    let kept_ino = fs::metadata(&kept).unwrap().ino();
    // A dry run says it would resume and writes nothing.
    let dry = ws.run(&[
        "--json",
        "restore",
        &id,
        "--to",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    dry.ok();
    assert_eq!(dry.json()["resumes"], true);
    assert!(leftover.exists());

    // Another snapshot into the unfinished target is refused, nothing written.
    write_file(&src.join("new.txt"), b"new\n", 0o644, T0);
    let second = ws.backup(&[src.to_str().unwrap()]);
    let other = second["id"].as_str().unwrap();
    let r = ws.run(&["restore", other, "--to", target.to_str().unwrap()]);
    r.error(14, &["unfinished restore of snapshot", &id, "--force"]);
    assert!(!target.join("app/new.txt").exists() && leftover.exists());
    // So is the same snapshot with another --path selection.
    let r = ws.run(&[
        "restore",
        &id,
        "--to",
        target.to_str().unwrap(),
        "--path",
        "app/d0",
    ]);
    r.error(14, &["unfinished restore of snapshot"]);

    ws.run(&["restore", &id, "--to", target.to_str().unwrap()])
        .ok();
    fs::remove_file(src.join("new.txt")).unwrap();
    set_mtime(&src, T0 + 200, 0);
    assert_same_tree(&src, &target.join("app"));
    assert_eq!(leftovers(&target), Vec::<String>::new());
    assert!(!target.join(MARKER).exists());
    assert_eq!(
        fs::metadata(&kept).unwrap().ino(),
        kept_ino,
        "a finished file is kept, not rewritten"
    );
    // Finished: the target is an ordinary non-empty one again.
    let r = ws.run(&["restore", &id, "--to", target.to_str().unwrap()]);
    r.error(14, &["--force"]);
    ws.run(&[
        "restore",
        other,
        "--to",
        target.to_str().unwrap(),
        "--force",
    ])
    .ok();
    assert_eq!(fs::read(target.join("app/new.txt")).unwrap(), b"new\n");
}

#[test]
fn a_marker_planted_by_another_user_does_not_make_a_restore_resume() {
    if !prerequisite(
        is_root(),
        "a_marker_planted_by_another_user_does_not_make_a_restore_resume",
        "root (to plant a marker owned by another user)",
    ) {
        return;
    }
    let ws = Workspace::init();
    let src = many_files(&ws.path("src"));
    let first = ws.backup(&[src.to_str().unwrap()]);
    let id = first["id"].as_str().unwrap().to_string();
    let target = ws.path("target");
    ws.run(&["restore", &id, "--to", target.to_str().unwrap()])
        .ok();
    // Another user, who can write to the target, plants the marker of this
    // very restore and a wrong file with the snapshot's size, mtime and mode.
    let marker = serde_json::json!({"snapshot": id, "paths": []});
    fs::write(target.join(MARKER), marker.to_string()).unwrap();
    lchown(target.join(MARKER), Some(65534), Some(65534)).unwrap();
    let victim = target.join("app/d0/f00.bin");
    let good = fs::read(&victim).unwrap();
    let before = fs::metadata(&victim).unwrap();
    fs::write(&victim, vec![b'X'; good.len()]).unwrap();
    set_mtime(&victim, before.mtime() as u64, before.mtime_nsec() as u32);
    // Not a resume: refused without --force, the planted file untouched.
    let r = ws.run(&["restore", &id, "--to", target.to_str().unwrap()]);
    r.error(
        14,
        &["unfinished restore", "not made by this user", "--force"],
    );
    assert_ne!(fs::read(&victim).unwrap(), good);
    // With --force everything is rewritten.
    ws.run(&["restore", &id, "--to", target.to_str().unwrap(), "--force"])
        .ok();
    assert_eq!(fs::read(&victim).unwrap(), good);
    assert!(!target.join(MARKER).exists());
}

/// Give `path` and everything below it to `uid` (without following symlinks).
fn chown_tree(path: &Path, uid: u32) {
    lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// A re-backup reuses the parent's xattrs of unchanged inodes only when
/// the parent read them with at least its privilege: a parent taken as a
/// user never saw `trusted.*`, so a root re-backup of the unchanged file
/// must read its xattrs again instead of storing the user's view.
#[test]
fn a_root_rebackup_after_a_user_backup_keeps_trusted_xattrs_of_unchanged_files() {
    let test = "a_root_rebackup_after_a_user_backup_keeps_trusted_xattrs_of_unchanged_files";
    if !prerequisite(
        is_root(),
        test,
        "needs root (trusted.* xattrs, a backup as nobody)",
    ) {
        return;
    }
    const NOBODY: u32 = 65534;
    let ws = Workspace::init();
    fs::set_permissions(
        ws.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("f");
    fs::write(&file, b"content\n").unwrap();
    if !prerequisite(
        xattr::set(&file, "trusted.lifeboat", b"root only").is_ok(),
        test,
        "the test filesystem does not take trusted.* xattrs",
    ) {
        return;
    }
    chown_tree(&src, NOBODY);
    chown_tree(&ws.repo, NOBODY);
    lchown(&ws.pass, Some(NOBODY), Some(NOBODY)).unwrap();
    ws.run_with(&["backup", src.to_str().unwrap()], |c| {
        use std::os::unix::process::CommandExt;
        c.env("HOME", ws.tmp.path()).uid(NOBODY).gid(NOBODY);
    })
    .ok();
    let second = ws.run(&["--json", "backup", src.to_str().unwrap()]);
    second.ok();
    assert!(
        second.json()["snapshot"]["parent"].is_string(),
        "{}",
        second.stdout
    );
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        xattr::get(out.join("src/f"), "trusted.lifeboat").unwrap(),
        Some(b"root only".to_vec())
    );
}
