//! End-to-end tests of the `lifeboat` binary on files: backup, restore,
//! dedup, errors and exit codes, damage detection, keys, concurrency,
//! selection and redaction, partial restores, config files.
//!
//! Every test runs the real binary in its own temporary directory with
//! `LIFEBOAT_REPOSITORY` / `LIFEBOAT_PASSWORD_FILE` set and every other
//! inherited `LIFEBOAT_*` variable removed.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An mtime in the past (2021-03-04), so restored mtimes cannot come from "now".
const T0: u64 = 1_614_830_400;

/// Build the rich tree below `parent/app` and return its path:
/// files of 0 bytes, small, ~5 MiB random and ~3 MiB text (several chunks
/// each), nested and empty directories, relative and dangling symlinks,
/// a non-UTF-8 name, modes 0600/0755/0640/0700 and fixed past mtimes.
fn rich_tree(parent: &Path) -> PathBuf {
    let app = parent.join("app");
    fs::create_dir_all(&app).unwrap();
    write_file(&app.join("empty.txt"), b"", 0o644, T0);
    write_file(&app.join("small.txt"), b"hello, lifeboat\n", 0o600, T0 + 1);
    write_file(
        &app.join("run.sh"),
        b"#!/bin/sh\necho running\n",
        0o755,
        T0 + 2,
    );
    write_file(
        &app.join("random.bin"),
        &pseudo_random(5 << 20, 1),
        0o640,
        T0 + 3,
    );
    write_file(&app.join("text.log"), &text(3 << 20, 7), 0o644, T0 + 4);
    write_file(
        &app.join("nested/deeper/leaf.txt"),
        b"leaf\n",
        0o644,
        T0 + 5,
    );
    write_file(&app.join("private/secret.txt"), b"s3cr3t\n", 0o600, T0 + 6);
    let odd = app.join(OsStr::from_bytes(b"caf\xe9-latin1.txt"));
    write_file(&odd, b"not utf-8 name\n", 0o644, T0 + 7);
    fs::create_dir(app.join("empty")).unwrap();
    symlink("nested/deeper/leaf.txt", app.join("link-rel")).unwrap();
    symlink("does/not/exist", app.join("link-dangling")).unwrap();
    set_symlink_mtime(&app.join("link-rel"), T0 + 8, 0);
    set_symlink_mtime(&app.join("link-dangling"), T0 + 9, 123_456_789);
    // Directories last, deepest first (creating entries changes their mtime).
    for (d, mode, t) in [
        ("nested/deeper", 0o755, T0 + 10),
        ("nested", 0o750, T0 + 11),
        ("private", 0o700, T0 + 12),
        ("empty", 0o700, T0 + 13),
        ("", 0o755, T0 + 14),
    ] {
        let p = if d.is_empty() {
            app.clone()
        } else {
            app.join(d)
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&p, t, 500);
    }
    app
}

fn snapshot_id(backup: &serde_json::Value) -> String {
    backup["id"].as_str().unwrap().to_string()
}

fn paths_of(ls: &serde_json::Value) -> Vec<String> {
    ls.as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- round trip

#[test]
fn backup_then_restore_is_byte_and_metadata_identical() {
    let ws = Workspace::init();
    let app = rich_tree(&ws.path("src"));
    let b = ws.backup(&[app.to_str().unwrap()]);
    let s = &b["snapshot"]["stats"];
    assert_eq!(s["files"], 8, "{b}");
    assert_eq!(s["dirs"], 5, "{b}");
    let file_bytes: u64 = contents(&app).values().map(|b| b.len() as u64).sum();
    assert_eq!(s["bytes"].as_u64().unwrap(), file_bytes, "{b}");
    assert!(file_bytes > 8 << 20);
    assert!(
        s["new_blobs"].as_u64().unwrap() >= 8,
        "big files must span several chunks: {b}"
    );
    assert_eq!(b["warnings"], serde_json::json!([]));

    let out = ws.path("out");
    let r = ws.run(&["--json", "restore", "latest", "--to", out.to_str().unwrap()]);
    r.ok();
    let v = r.json();
    assert_eq!(v["snapshot"], b["id"]);
    assert_eq!(v["summary"]["files"], 8);
    assert_eq!(v["summary"]["symlinks"], 2);
    // DIR/<basename of the backed-up path>, nothing else.
    let top: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("app")]);
    assert_same_tree(&app, &out.join("app"));
    assert_eq!(
        fs::read_link(out.join("app/link-dangling")).unwrap(),
        Path::new("does/not/exist")
    );
}

// ---------------------------------------------------------------- dedup

/// A same-size edit with the mtime put back (as `touch -d` or a tool that
/// preserves times would) leaves only the ctime changed: the unchanged
/// check must see it, or the old bytes are restored from the parent.
#[test]
fn a_same_size_edit_with_the_old_mtime_is_backed_up_because_the_ctime_changed() {
    use std::os::unix::fs::MetadataExt;
    let ws = Workspace::init();
    let src = ws.path("src");
    let file = src.join("conf.txt");
    write_file(&file, b"mode = primary\n", 0o644, T0);
    write_file(&src.join("other.txt"), b"untouched\n", 0o644, T0);
    let first = ws.backup(&[src.to_str().unwrap()]);
    let before = fs::metadata(&file).unwrap();

    fs::write(&file, b"mode = replica\n").unwrap();
    set_mtime(&file, T0, 0);
    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec(), after.ino()),
        (
            before.len(),
            before.mtime(),
            before.mtime_nsec(),
            before.ino()
        ),
        "size, mtime and inode must look unchanged"
    );
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec()),
        "the edit changes the ctime"
    );

    let second = ws.backup(&[src.to_str().unwrap()]);
    assert_eq!(second["snapshot"]["parent"], first["id"]);
    assert_ne!(second["snapshot"]["tree"], first["snapshot"]["tree"]);
    let out = ws.path("out");
    ws.run(&[
        "restore",
        &snapshot_id(&second),
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        fs::read(out.join("src/conf.txt")).unwrap(),
        b"mode = replica\n"
    );
    assert_eq!(fs::read(out.join("src/other.txt")).unwrap(), b"untouched\n");
    let old = ws.path("old");
    ws.run(&[
        "restore",
        &snapshot_id(&first),
        "--to",
        old.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        fs::read(old.join("src/conf.txt")).unwrap(),
        b"mode = primary\n"
    );
}

#[test]
fn unchanged_backup_adds_no_blobs_and_a_change_adds_only_its_data_and_trees() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("big.bin"), &pseudo_random(4 << 20, 2), 0o644, T0);
    write_file(&src.join("sub/small.txt"), b"version one\n", 0o644, T0);
    write_file(&src.join("other.txt"), b"untouched\n", 0o644, T0);
    let first = ws.backup(&[src.to_str().unwrap()]);
    assert!(first["snapshot"]["stats"]["new_blobs"].as_u64().unwrap() >= 4);

    let second = ws.backup(&[src.to_str().unwrap()]);
    assert_eq!(second["snapshot"]["stats"]["new_blobs"], 0, "{second}");
    assert_eq!(second["snapshot"]["stats"]["stored_bytes"], 0, "{second}");
    assert_eq!(second["snapshot"]["tree"], first["snapshot"]["tree"]);
    assert_eq!(second["snapshot"]["parent"], first["id"]);

    write_file(
        &src.join("sub/small.txt"),
        b"version two, longer\n",
        0o644,
        T0 + 60,
    );
    let third = ws.backup(&[src.to_str().unwrap()]);
    let st = &third["snapshot"]["stats"];
    // One data blob (the changed file) + the trees on its path: sub, src, root.
    assert_eq!(st["new_blobs"], 4, "{third}");
    assert!(
        st["new_bytes"].as_u64().unwrap() < 64 * 1024,
        "the big file must not be stored again: {third}"
    );

    let old = ws.path("old");
    ws.run(&[
        "restore",
        &snapshot_id(&first)[..12],
        "--to",
        old.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        fs::read(old.join("src/sub/small.txt")).unwrap(),
        b"version one\n"
    );
    assert_eq!(
        fs::read(old.join("src/big.bin")).unwrap(),
        pseudo_random(4 << 20, 2)
    );
    let new = ws.path("new");
    ws.run(&["restore", "latest", "--to", new.to_str().unwrap()])
        .ok();
    assert_same_tree(&src, &new.join("src"));
}

// ---------------------------------------------------------------- errors

#[test]
fn wrong_password_exits_11_with_one_clear_line() {
    let ws = Workspace::init();
    let bad = ws.password_file("bad", "not the password");
    let r = ws.run_env(
        &["snapshots"],
        &[("LIFEBOAT_PASSWORD_FILE", bad.as_os_str())],
    );
    r.error(11, &["wrong password"]);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let j = ws.run_env(
        &["--json", "snapshots"],
        &[("LIFEBOAT_PASSWORD_FILE", bad.as_os_str())],
    );
    j.code(11);
    assert_eq!(j.json()["error"]["code"], "wrong_key");
}

#[test]
fn missing_repository_exits_10_and_creates_nothing() {
    let ws = Workspace::new();
    let r = ws.run(&["snapshots"]);
    r.error(10, &["no lifeboat repository", "lifeboat init"]);
    assert!(
        !ws.repo.exists(),
        "a read command must not create the repository"
    );
    let src = ws.path("src");
    write_file(&src.join("a"), b"a", 0o644, T0);
    ws.run(&["backup", src.to_str().unwrap()])
        .error(10, &["no lifeboat repository"]);
    assert!(!ws.repo.exists());
}

#[test]
fn unknown_format_version_exits_13_naming_the_version() {
    let ws = Workspace::init();
    let cfg_path = ws.repo.join("config");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_str(cfg["payload"].as_str().unwrap()).unwrap();
    payload["version"] = serde_json::json!(2);
    cfg["payload"] = serde_json::json!(payload.to_string());
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let before = fs::read(&cfg_path).unwrap();
    for args in [&["snapshots"][..], &["verify"], &["key", "list"]] {
        ws.run(args).error(13, &["version 2", "not supported"]);
    }
    assert_eq!(fs::read(&cfg_path).unwrap(), before);
}

#[test]
fn init_twice_is_refused_and_changes_nothing() {
    let ws = Workspace::init();
    let config = fs::read(ws.repo.join("config")).unwrap();
    let keys: Vec<_> = fs::read_dir(ws.repo.join("keys")).unwrap().collect();
    assert_eq!(keys.len(), 1);
    ws.run(&["init"])
        .error(15, &["already holds a lifeboat repository"]);
    assert_eq!(fs::read(ws.repo.join("config")).unwrap(), config);
    assert_eq!(fs::read_dir(ws.repo.join("keys")).unwrap().count(), 1);
    ws.run(&["snapshots"]).ok();
}

#[test]
fn restore_over_existing_files_exits_14_untouched_and_force_overwrites() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("a.txt"), b"from the backup\n", 0o644, T0);
    write_file(&src.join("d/b.txt"), b"bbb\n", 0o600, T0);
    set_mtime(&src.join("d"), T0, 0);
    set_mtime(&src, T0, 0);
    ws.backup(&[src.to_str().unwrap()]);

    let target = ws.path("target");
    write_file(
        &target.join("src/a.txt"),
        b"mine, keep me\n",
        0o644,
        T0 + 99,
    );
    let r = ws.run(&["restore", "latest", "--to", target.to_str().unwrap()]);
    r.error(14, &["--force", "nothing was written"]);
    assert_eq!(
        fs::read(target.join("src/a.txt")).unwrap(),
        b"mine, keep me\n"
    );
    assert_eq!(
        files_below(&target),
        vec!["src/a.txt".to_string()],
        "nothing else may be written"
    );

    ws.run(&[
        "restore",
        "latest",
        "--to",
        target.to_str().unwrap(),
        "--force",
    ])
    .ok();
    assert_same_tree(&src, &target.join("src"));
}

#[test]
fn snapshot_prefix_matching_nothing_exits_18() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("a"), b"a", 0o644, T0);
    let id = snapshot_id(&ws.backup(&[src.to_str().unwrap()]));
    let prefix = if id.starts_with("ff") { "00" } else { "ff" };
    let out = ws.path("out");
    ws.run(&["restore", prefix, "--to", out.to_str().unwrap()])
        .error(18, &["no snapshot matches", prefix]);
    ws.run(&["ls", prefix]).error(18, &["no snapshot matches"]);
    assert!(!out.exists());
}

/// docs/CLI.md: 18 = not found (snapshot, path, key).
#[test]
fn path_not_in_the_snapshot_exits_18_for_restore_and_ls() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("a"), b"a", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let missing = ws.path("missing");
    ws.run(&[
        "restore",
        "latest",
        "--to",
        missing.to_str().unwrap(),
        "--path",
        "src/nope",
    ])
    .error(18, &["not in the snapshot", "src/nope"]);
    assert!(!missing.exists());
    ws.run(&["ls", "latest", "src/nope"])
        .error(18, &["not in snapshot", "src/nope"]);
}

/// docs/CLI.md: 18 = not found (snapshot, path, key).
#[test]
fn unknown_key_id_exits_18() {
    let ws = Workspace::init();
    ws.run(&["key", "remove", "ffffffffff"])
        .error(18, &["no key matches"]);
    assert_eq!(fs::read_dir(ws.repo.join("keys")).unwrap().count(), 1);
}

/// docs/CLI.md: 15 = bad config, option or request.
#[test]
fn bad_read_data_percentage_exits_15() {
    let ws = Workspace::init();
    for bad in ["--read-data=0%", "--read-data=150%", "--read-data=lots"] {
        ws.run(&["verify", bad])
            .error(15, &["--read-data", "percentage"]);
    }
}

/// `lifeboat ls latest | head -1` must not panic when the reader goes away.
#[test]
fn output_into_a_closed_pipe_exits_quietly() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("a"), b"a", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    for args in [&["ls", "latest"][..], &["--json", "snapshots"]] {
        // A pipe whose only reader has already exited: every write is EPIPE.
        let mut reader = Command::new("true")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let write_end = reader.stdin.take().unwrap();
        assert!(reader.wait().unwrap().success());
        let mut c = ws.cmd();
        c.stdout(write_end);
        let r = run_cmd(c, args);
        assert_eq!(r.stderr, "", "`{}` wrote to stderr", r.what);
        r.ok();
    }
}

// ---------------------------------------------------------------- damage

/// A repository with one snapshot of `app/` (a 3 MiB random file that
/// fills most of the one data pack, and two small files).
struct Damaged {
    ws: Workspace,
    snap: String,
    copy: PathBuf,
}

fn damage_fixture() -> Damaged {
    let ws = Workspace::init();
    let app = ws.path("src/app");
    write_file(&app.join("big.bin"), &pseudo_random(3 << 20, 3), 0o644, T0);
    write_file(&app.join("a.txt"), b"alpha\n", 0o644, T0);
    write_file(&app.join("b/c.txt"), b"gamma\n", 0o644, T0);
    let snap = snapshot_id(&ws.backup(&[app.to_str().unwrap()]));
    let (code, v) = ws.verify(&["--read-data"]);
    assert_eq!((code, &v["ok"]), (0, &serde_json::json!(true)), "{v}");
    let copy = ws.path("damaged");
    copy_tree(&ws.repo, &copy);
    Damaged { ws, snap, copy }
}

impl Damaged {
    fn verify(&self, extra: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json", "verify"];
        a.extend_from_slice(extra);
        let r = self.ws.run_on(&self.copy, &a);
        r.code(12);
        let v = r.json();
        assert_eq!(v["ok"], false, "{v}");
        v
    }

    /// The data pack (the largest).
    fn data_pack(&self) -> (String, PathBuf, u64) {
        let p = packs(&self.copy);
        assert_eq!(p.len(), 2, "one data and one tree pack: {p:?}");
        p.into_iter().next().unwrap()
    }

    /// The repository's working keys, from an exported raw key.
    fn keys(&self) -> lifeboat_repo::crypto::Keys {
        let raw = self.ws.path("fixture.key");
        if !raw.exists() {
            self.ws
                .run(&["key", "export", "-o", raw.to_str().unwrap()])
                .ok();
        }
        let (_, master) = lifeboat_repo::keys::RawKeyFile::parse(&fs::read(&raw).unwrap()).unwrap();
        lifeboat_repo::crypto::Keys::derive(&master)
    }

    /// The pack's blob list, read with the repository's exported key.
    fn pack_entries(&self, key: &str, bytes: &[u8]) -> Vec<lifeboat_repo::pack::PackEntry> {
        lifeboat_repo::pack::parse_pack(&self.keys(), bytes, key).unwrap()
    }

    /// Replace the copy's only index file by `edit` of its records, sealed
    /// with the repository's key and stored under its new name (a valid
    /// index file with wrong content, as a buggy or malicious writer makes).
    fn rewrite_index(&self, edit: impl FnOnce(&mut Vec<lifeboat_repo::index::PackRecord>)) {
        let keys = self.keys();
        let (key, path) = only_object(&self.copy, "index");
        let name: lifeboat_repo::Id = key.trim_start_matches("index/").parse().unwrap();
        let mut records =
            lifeboat_repo::index::decode_index_file(&keys, &name, &fs::read(&path).unwrap())
                .unwrap();
        edit(&mut records);
        let (new_name, bytes) = lifeboat_repo::index::encode_index_file(&keys, &records).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(path.with_file_name(new_name.to_string()), bytes).unwrap();
    }

    /// The original is still healthy (damage was done to the copy only).
    fn original_still_ok(&self) {
        let (code, v) = self.ws.verify(&["--read-data"]);
        assert_eq!(code, 0, "{v}");
    }
}

#[track_caller]
fn assert_problem(v: &serde_json::Value, object: &str, message_part: &str) {
    let problems = v["report"]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["object"] == object
            && p["message"].as_str().unwrap().contains(message_part)),
        "no problem on {object} mentioning {message_part:?}: {v:#}"
    );
}

#[track_caller]
fn assert_damaged(v: &serde_json::Value, snap: &str, paths: &[&str]) {
    let damaged = v["report"]["damaged_snapshots"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{v:#}");
    assert_eq!(damaged[0]["id"], snap, "{v:#}");
    assert_eq!(damaged[0]["paths"], serde_json::json!(paths), "{v:#}");
}

#[test]
fn flipped_byte_in_a_pack_is_found_by_read_data_and_breaks_only_that_file() {
    let d = damage_fixture();
    let (key, path, _) = d.data_pack();
    // The middle byte of the largest blob: a chunk of big.bin.
    let entries = d.pack_entries(&key, &fs::read(&path).unwrap());
    let largest = entries.iter().max_by_key(|e| e.len).unwrap();
    assert_eq!(largest.kind, lifeboat_repo::BlobKind::Data);
    assert!(largest.raw_len >= 512 * 1024, "{largest:?}");
    flip_byte(&path, (largest.offset + largest.len / 2) as usize);

    // Sizes are intact: the structure check alone cannot see it.
    let r = d.ws.run_on(&d.copy, &["--json", "verify"]);
    r.ok();
    let v = d.verify(&["--read-data"]);
    assert_problem(&v, &key, "does not match its name");
    assert_problem(&v, &key, "authentication failed");
    assert_damaged(&v, &d.snap, &["/app/big.bin"]);
    assert_eq!(v["report"]["packs_read"], 2);

    let out = d.ws.path("out");
    let r = d.ws.run_on(
        &d.copy,
        &["restore", &d.snap, "--to", out.to_str().unwrap()],
    );
    r.error(12, &["corrupted"]);
    // The undamaged files of the same snapshot still restore.
    let out2 = d.ws.path("out2");
    d.ws.run_on(
        &d.copy,
        &[
            "restore",
            &d.snap,
            "--to",
            out2.to_str().unwrap(),
            "--path",
            "app/a.txt",
        ],
    )
    .ok();
    assert_eq!(fs::read(out2.join("a.txt")).unwrap(), b"alpha\n");
    d.original_still_ok();
}

/// An index entry that points one blob's id at another valid blob: a blob
/// sealed for a.txt's id (so it authenticates) whose bytes are c.txt's,
/// in a pack of its own that the index names for a.txt. Only re-hashing
/// the plaintext against the id shows it: restore and `verify --read-data`
/// must both refuse it.
#[test]
fn an_index_pointing_a_blob_id_at_another_blob_fails_restore_and_read_data() {
    use lifeboat_repo::pack::PackBuilder;
    let d = damage_fixture();
    let keys = d.keys();
    let alpha = keys.blob_id(b"alpha\n");
    let sealed = keys.seal(&lifeboat_repo::crypto::ad::blob(&alpha), b"gamma\n");
    let mut pack = PackBuilder::default();
    pack.add(lifeboat_repo::BlobKind::Data, alpha, false, &sealed, 6)
        .unwrap();
    let (pack_id, bytes, entries) = pack.finish(&keys).unwrap();
    let pack_key = lifeboat_repo::repository::pack_key(&pack_id);
    let size = bytes.len() as u64;
    fs::create_dir_all(d.copy.join(&pack_key).parent().unwrap()).unwrap();
    fs::write(d.copy.join(&pack_key), bytes).unwrap();
    d.rewrite_index(|records| {
        for r in records.iter_mut() {
            r.blobs.retain(|b| b.id != alpha);
        }
        records.push(lifeboat_repo::index::PackRecord {
            id: pack_id,
            size,
            blobs: entries,
        });
    });
    // Structure is intact: every indexed pack exists with its size.
    d.ws.run_on(&d.copy, &["--json", "verify"]).ok();
    let v = d.verify(&["--read-data"]);
    assert_problem(&v, &pack_key, &format!("blob {} ", alpha.short()));
    assert_problem(&v, &pack_key, "does not hash to its id");
    assert_eq!(
        v["report"]["problems"].as_array().unwrap().len(),
        1,
        "{v:#}"
    );
    assert_damaged(&v, &d.snap, &["/app/a.txt"]);

    let out = d.ws.path("out");
    d.ws.run_on(
        &d.copy,
        &[
            "restore",
            &d.snap,
            "--to",
            out.to_str().unwrap(),
            "--path",
            "app/a.txt",
        ],
    )
    .error(12, &["does not hash to its id"]);
    assert_ne!(
        fs::read(out.join("a.txt")).ok().as_deref(),
        Some(&b"gamma\n"[..]),
        "the other blob's bytes must never be restored as a.txt"
    );
    let out2 = d.ws.path("out2");
    d.ws.run_on(
        &d.copy,
        &[
            "restore",
            &d.snap,
            "--to",
            out2.to_str().unwrap(),
            "--path",
            "app/b/c.txt",
        ],
    )
    .ok();
    assert_eq!(fs::read(out2.join("c.txt")).unwrap(), b"gamma\n");
    d.original_still_ok();
}

#[test]
fn truncated_pack_is_found_by_the_structure_check_with_the_files_it_holds() {
    let d = damage_fixture();
    let (key, path, size) = d.data_pack();
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(size - 1000).unwrap();
    drop(f);
    let v = d.verify(&[]);
    assert_problem(&v, &key, "truncated");
    assert_damaged(&v, &d.snap, &["/app/a.txt", "/app/b/c.txt", "/app/big.bin"]);
    assert_eq!(v["report"]["packs_read"], 0);
    d.original_still_ok();
}

#[test]
fn flipped_byte_in_an_index_file_is_reported() {
    let d = damage_fixture();
    let (key, path) = only_object(&d.copy, "index");
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len / 2);
    let v = d.verify(&["--read-data"]);
    assert_problem(&v, &key, "content does not match its name");
    assert_eq!(
        v["report"]["problems"].as_array().unwrap().len(),
        1,
        "{v:#}"
    );
    // Without its index nothing of the snapshot can be found.
    assert_damaged(&v, &d.snap, &["/"]);
    assert_eq!(v["report"]["unindexed_packs"], 2, "{v:#}");
    // Commands that need the index name the damaged file.
    let out = d.ws.path("out");
    d.ws.run_on(
        &d.copy,
        &["restore", "latest", "--to", out.to_str().unwrap()],
    )
    .error(12, &["corrupted", &key]);
    d.original_still_ok();
}

#[test]
fn flipped_byte_in_a_snapshot_file_is_reported_as_a_damaged_snapshot() {
    let d = damage_fixture();
    let (key, path) = only_object(&d.copy, "snapshots");
    assert_eq!(key, format!("snapshots/{}", d.snap));
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len / 2);
    let v = d.verify(&["--read-data"]);
    assert_problem(&v, &key, "damaged");
    assert_damaged(&v, &d.snap, &["/"]);
    d.original_still_ok();
}

#[test]
fn deleted_pack_is_reported_missing_with_the_files_it_held() {
    let d = damage_fixture();
    let (key, path, _) = d.data_pack();
    fs::remove_file(&path).unwrap();
    let v = d.verify(&[]);
    assert_problem(&v, &key, "missing");
    assert_damaged(&v, &d.snap, &["/app/a.txt", "/app/b/c.txt", "/app/big.bin"]);
    let out = d.ws.path("out");
    d.ws.run_on(
        &d.copy,
        &["restore", &d.snap, "--to", out.to_str().unwrap()],
    )
    .error(12, &[&key, "not found"]);
    assert!(
        files_below(&out)
            .iter()
            .filter(|f| !f.starts_with(".lifeboat-restore"))
            .all(|f| fs::metadata(out.join(f)).unwrap().len() == 0),
        "no data restored from a missing pack: {:?}",
        files_below(&out)
    );
    d.original_still_ok();
}

#[test]
fn damage_in_one_snapshot_file_does_not_block_restoring_another() {
    let ws = Workspace::init();
    let a = ws.path("a");
    let b = ws.path("b");
    write_file(&a.join("one.txt"), b"one\n", 0o644, T0);
    write_file(&b.join("two.txt"), b"two\n", 0o644, T0);
    let sa = snapshot_id(&ws.backup(&[a.to_str().unwrap()]));
    let sb = snapshot_id(&ws.backup(&[b.to_str().unwrap()]));
    flip_byte(&ws.repo.join("snapshots").join(&sa), 50);
    let out = ws.path("out");
    ws.run(&["restore", &sb[..10], "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(out.join("b/two.txt")).unwrap(), b"two\n");
}

#[test]
fn read_data_percentage_reads_a_subset_of_many_packs_and_passes() {
    let ws = Workspace::init();
    for i in 0..4u64 {
        let d = ws.path(format!("d{i}"));
        write_file(&d.join("f.bin"), &pseudo_random(200_000, 10 + i), 0o644, T0);
        ws.backup(&[d.to_str().unwrap()]);
    }
    let (code, v) = ws.verify(&["--read-data=50%"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    let r = &v["report"];
    let packs = r["packs"].as_u64().unwrap();
    let read = r["packs_read"].as_u64().unwrap();
    assert_eq!(packs, 8, "a data and a tree pack per backup: {v:#}");
    assert!(read > 0 && read < packs, "{v:#}");
    assert_eq!(read, 4, "50% of 8 packs: {v:#}");
    assert_eq!(r["problems"], serde_json::json!([]));
    let (code, v) = ws.verify(&["--read-data"]);
    assert_eq!(
        (code, &v["report"]["packs_read"]),
        (0, &serde_json::json!(8))
    );
}

// ---------------------------------------------------------------- keys

fn key_list(ws: &Workspace, pass: &Path) -> Vec<serde_json::Value> {
    let r = ws.run_env(
        &["--json", "key", "list"],
        &[("LIFEBOAT_PASSWORD_FILE", pass.as_os_str())],
    );
    r.ok();
    r.json().as_array().unwrap().clone()
}

#[test]
fn added_key_opens_and_only_the_key_not_in_use_can_be_removed() {
    let ws = Workspace::init();
    let second = ws.password_file("second", "another passphrase");
    let r = ws.run(&[
        "key",
        "add",
        "--new-password-file",
        second.to_str().unwrap(),
        "--label",
        "ops",
    ]);
    r.ok();
    assert!(r.stdout.starts_with("added key "), "{}", r.stdout);
    ws.run_env(
        &["snapshots"],
        &[("LIFEBOAT_PASSWORD_FILE", second.as_os_str())],
    )
    .ok();

    let keys = key_list(&ws, &ws.pass);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let current: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "{keys:?}");
    let first_id = current[0]["id"].as_str().unwrap().to_string();
    let other = keys.iter().find(|k| k["current"] == false).unwrap();
    assert_eq!(other["label"], "ops");
    let second_id = other["id"].as_str().unwrap().to_string();
    // Opened with the second passphrase, the second key is the current one.
    let keys2 = key_list(&ws, &second);
    assert!(keys2
        .iter()
        .any(|k| k["id"] == second_id.as_str() && k["current"] == true));

    ws.run(&["key", "remove", &first_id[..12]]).error(
        15,
        &["refusing to remove the key this session was opened with"],
    );
    assert_eq!(key_list(&ws, &ws.pass).len(), 2);

    ws.run(&["key", "remove", &second_id[..12]]).ok();
    let keys = key_list(&ws, &ws.pass);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], first_id.as_str());
    ws.run_env(
        &["snapshots"],
        &[("LIFEBOAT_PASSWORD_FILE", second.as_os_str())],
    )
    .error(11, &["wrong password"]);
}

#[test]
fn key_passwd_replaces_the_passphrase() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("f.txt"), b"data\n", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let newpw = ws.password_file("new", "brand new passphrase");
    ws.run(&[
        "key",
        "passwd",
        "--new-password-file",
        newpw.to_str().unwrap(),
    ])
    .ok();
    ws.run(&["snapshots"]).error(11, &["wrong password"]);
    let keys = key_list(&ws, &newpw);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    let out = ws.path("out");
    ws.run_env(
        &["restore", "latest", "--to", out.to_str().unwrap()],
        &[("LIFEBOAT_PASSWORD_FILE", newpw.as_os_str())],
    )
    .ok();
    assert_eq!(fs::read(out.join("src/f.txt")).unwrap(), b"data\n");
}

#[test]
fn exported_key_file_is_0600_opens_its_repository_only_and_is_never_overwritten() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("f.txt"), b"exported key data\n", 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let key = ws.path("raw.key");
    ws.run(&["key", "export", "-o", key.to_str().unwrap()]).ok();
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let exported = fs::read(&key).unwrap();

    // Opens with the key file and no password at all.
    let with_key = |args: &[&str]| {
        ws.run_with(args, |c| {
            c.env_remove("LIFEBOAT_PASSWORD_FILE")
                .env("LIFEBOAT_KEY_FILE", &key);
        })
    };
    let r = with_key(&["--json", "snapshots"]);
    r.ok();
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let out = ws.path("out");
    with_key(&["restore", "latest", "--to", out.to_str().unwrap()]).ok();
    assert_eq!(
        fs::read(out.join("src/f.txt")).unwrap(),
        b"exported key data\n"
    );

    // Another repository's key is refused.
    let other = Workspace::init();
    let other_key = other.path("other.key");
    other
        .run(&["key", "export", "-o", other_key.to_str().unwrap()])
        .ok();
    ws.run_with(&["snapshots"], |c| {
        c.env_remove("LIFEBOAT_PASSWORD_FILE")
            .env("LIFEBOAT_KEY_FILE", &other_key);
    })
    .error(11, &["another repository"]);

    // Export refuses to overwrite.
    ws.run(&["key", "export", "-o", key.to_str().unwrap()])
        .error(14, &[key.to_str().unwrap(), "must not exist"]);
    assert_eq!(fs::read(&key).unwrap(), exported);
}

// ---------------------------------------------------------------- concurrency

#[test]
fn two_concurrent_backups_into_one_repository_both_succeed_and_restore() {
    let ws = Workspace::init();
    let shared = pseudo_random(2 << 20, 40);
    let mut dirs = Vec::new();
    for (i, name) in ["left", "right"].iter().enumerate() {
        let d = ws.path(name);
        write_file(
            &d.join("own.bin"),
            &pseudo_random(3 << 20, 50 + i as u64),
            0o644,
            T0,
        );
        // The same content in both: both writers race to store it.
        write_file(&d.join("shared.bin"), &shared, 0o644, T0);
        write_file(&d.join("notes.txt"), &text(300_000, i as u64), 0o644, T0);
        set_mtime(&d, T0, 0);
        dirs.push(d);
    }
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            let mut c = ws.cmd();
            c.args(["--json", "backup", d.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        ids.push(snapshot_id(&v));
    }
    assert_eq!(ws.snapshots().len(), 2);
    for (d, id) in dirs.iter().zip(&ids) {
        let out = ws.path(format!("out-{}", &id[..8]));
        ws.run(&["restore", id, "--to", out.to_str().unwrap()]).ok();
        assert_same_tree(d, &out.join(d.file_name().unwrap()));
    }
    let (code, v) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["report"]["problems"], serde_json::json!([]));
}

// ---------------------------------------------------------------- options

#[test]
fn backup_time_and_tags_are_recorded_and_a_bad_time_is_refused() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("f"), b"f", 0o644, T0);
    ws.backup(&[
        "--time",
        "2020-01-02T03:04:05Z",
        "--tag",
        "nightly",
        "--tag",
        "before-upgrade",
        src.to_str().unwrap(),
    ]);
    let snaps = ws.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["time"], "2020-01-02T03:04:05Z");
    assert_eq!(
        snaps[0]["tags"],
        serde_json::json!(["nightly", "before-upgrade"])
    );
    ws.run(&["backup", "--time", "yesterday", src.to_str().unwrap()])
        .error(15, &["--time", "RFC 3339"]);
    assert_eq!(ws.snapshots().len(), 1, "a refused backup saves nothing");
}

fn selection_tree(ws: &Workspace) -> PathBuf {
    let src = ws.path("proj");
    for (p, body) in [
        ("a.log", "log a"),
        ("b.toml", "b = 1"),
        ("sub/c.log", "log c"),
        ("sub/d.toml", "d = 2"),
        ("sub/e.txt", "text e"),
        ("logs/x.log", "log x"),
    ] {
        write_file(&src.join(p), body.as_bytes(), 0o644, T0);
    }
    src
}

#[test]
fn exclude_and_include_globs_select_files_by_name_at_any_depth() {
    let ws = Workspace::init();
    let src = selection_tree(&ws);
    let ex = ws.backup(&["--exclude", "*.log", src.to_str().unwrap()]);
    let out = ws.path("ex");
    ws.run(&["restore", &snapshot_id(&ex), "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        files_below(&out),
        vec!["proj/b.toml", "proj/sub/d.toml", "proj/sub/e.txt"]
    );
    assert!(
        out.join("proj/logs").is_dir(),
        "without includes, a directory emptied by excludes is kept"
    );

    let inc = ws.backup(&["--include", "*.toml", src.to_str().unwrap()]);
    let out = ws.path("inc");
    ws.run(&["restore", &snapshot_id(&inc), "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(files_below(&out), vec!["proj/b.toml", "proj/sub/d.toml"]);
    assert!(
        !out.join("proj/logs").exists(),
        "with includes, directories left empty are dropped"
    );
    assert_eq!(fs::read(out.join("proj/sub/d.toml")).unwrap(), b"d = 2");
}

#[test]
fn env_capture_redacts_secret_variables_and_keeps_the_rest() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("f"), b"f", 0o644, T0);
    let secret = "xyz-very-secret-4242";
    // A known environment, so the whole capture can be checked.
    let r = ws.run_with(&["--json", "backup", "--env", src.to_str().unwrap()], |c| {
        c.env_clear()
            .env("LIFEBOAT_REPOSITORY", &ws.repo)
            .env("LIFEBOAT_PASSWORD_FILE", &ws.pass)
            .env("MY_API_TOKEN", secret)
            .env("MY_PLAIN_SETTING", "keep-me")
            .env("DATABASE_URL", "postgres://app:pw123@db:5432/x");
    });
    r.ok();
    assert_eq!(r.json()["snapshot"]["meta"]["environment_captured"], true);
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    let env = fs::read_to_string(out.join("environment.env")).unwrap();
    assert_eq!(
        env,
        format!(
            "DATABASE_URL=postgres://app:<redacted>@db:5432/x\n\
             LIFEBOAT_PASSWORD_FILE=<redacted>\n\
             LIFEBOAT_REPOSITORY={}\n\
             MY_API_TOKEN=<redacted>\n\
             MY_PLAIN_SETTING=keep-me\n",
            ws.repo.display()
        )
    );
    assert!(env.lines().any(|l| l == "MY_API_TOKEN=<redacted>"), "{env}");
    assert!(
        env.lines().any(|l| l == "MY_PLAIN_SETTING=keep-me"),
        "{env}"
    );
    assert!(!env.contains(secret), "{env}");
    assert!(!env.contains("xyz"), "{env}");
    assert_eq!(fs::read(out.join("src/f")).unwrap(), b"f");
}

#[test]
fn dotenv_files_are_redacted_by_default_and_verbatim_with_no_redact() {
    let ws = Workspace::init();
    let src = ws.path("site");
    let dotenv = "APP_NAME=demo\nDB_PASSWORD=hunter2\n# comment\n";
    write_file(&src.join(".env"), dotenv.as_bytes(), 0o600, T0);
    write_file(&src.join("app.toml"), b"x = 1\n", 0o644, T0);
    let b = ws.backup(&[src.to_str().unwrap()]);
    let redacted = b["snapshot"]["meta"]["redacted_files"].as_array().unwrap();
    assert_eq!(redacted.len(), 1, "{b}");
    assert!(redacted[0].as_str().unwrap().ends_with("site/.env"));
    let out = ws.path("out");
    ws.run(&["restore", &snapshot_id(&b), "--to", out.to_str().unwrap()])
        .ok();
    let got = fs::read_to_string(out.join("site/.env")).unwrap();
    assert_eq!(got, "APP_NAME=demo\nDB_PASSWORD=<redacted>\n# comment\n");
    assert!(!got.contains("hunter2"));

    let b = ws.backup(&["--no-redact", src.to_str().unwrap()]);
    assert_eq!(
        b["snapshot"]["meta"]["redacted_files"],
        serde_json::json!([])
    );
    let out = ws.path("out-verbatim");
    ws.run(&["restore", &snapshot_id(&b), "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(out.join("site/.env")).unwrap(), dotenv);
    assert_same_tree(&src, &out.join("site"));
}

// ---------------------------------------------------------------- partial

#[test]
fn restore_of_a_subtree_or_a_single_file_and_ls_listings() {
    let ws = Workspace::init();
    let app = rich_tree(&ws.path("src"));
    let id = snapshot_id(&ws.backup(&[app.to_str().unwrap()]));

    let sub = ws.path("sub");
    ws.run(&[
        "restore",
        "latest",
        "--to",
        sub.to_str().unwrap(),
        "--path",
        "app/nested",
    ])
    .ok();
    assert_same_tree(&app.join("nested"), &sub.join("nested"));
    assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);

    let one = ws.path("one");
    ws.run(&[
        "restore",
        &id[..8],
        "--to",
        one.to_str().unwrap(),
        "--path",
        "/app/run.sh",
    ])
    .ok();
    assert_same_tree(&app.join("run.sh"), &one.join("run.sh"));
    assert_eq!(fs::read_dir(&one).unwrap().count(), 1);

    let ls = ws.run(&["--json", "ls", "latest"]);
    ls.ok();
    let paths = paths_of(&ls.json());
    for p in [
        "/app",
        "/app/empty",
        "/app/empty.txt",
        "/app/nested/deeper/leaf.txt",
        "/app/link-dangling",
        "/app/random.bin",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not in {paths:?}");
    }
    // The root dir, 8 files, 4 more dirs, 2 symlinks.
    assert_eq!(paths.len(), 1 + 8 + 4 + 2, "{paths:?}");
    let rows = ls.json();
    let random = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/app/random.bin")
        .unwrap();
    assert_eq!(random["size"], 5 << 20);
    assert_eq!(random["mode"], 0o640);
    assert_eq!(random["type"], "file");
    assert_eq!(
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == "/app/link-rel")
            .unwrap()["target"],
        "nested/deeper/leaf.txt"
    );

    let text_ls = ws.run(&["ls", "latest", "app/nested"]);
    text_ls.ok();
    let lines: Vec<&str> = text_ls.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", text_ls.stdout);
    assert!(lines[0].starts_with("d0755") && lines[0].ends_with("/app/nested/deeper"));
    assert!(lines[1].starts_with("-0644") && lines[1].ends_with("/app/nested/deeper/leaf.txt"));
}

#[test]
fn restore_dry_run_writes_nothing() {
    let ws = Workspace::init();
    let app = rich_tree(&ws.path("src"));
    ws.backup(&[app.to_str().unwrap()]);
    let target = ws.path("dry");
    let r = ws.run(&[
        "restore",
        "latest",
        "--to",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    r.ok();
    assert!(!target.exists(), "dry run created {}", target.display());
    assert!(
        r.stdout.contains(&format!(
            "would restore {}",
            target.join("app/run.sh").display()
        )),
        "{}",
        r.stdout
    );
    let j = ws.run(&[
        "--json",
        "restore",
        "latest",
        "--to",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    j.ok();
    let v = j.json();
    assert_eq!(v["summary"]["files"], 8);
    assert_eq!(v["conflicts"], serde_json::json!([]));
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "app/nested/deeper/leaf.txt"));
    assert!(!target.exists());

    // Against an occupied target the dry run lists the conflicts and still writes nothing.
    write_file(&target.join("app/small.txt"), b"mine", 0o644, T0);
    let v = ws
        .run(&[
            "--json",
            "restore",
            "latest",
            "--to",
            target.to_str().unwrap(),
            "--dry-run",
        ])
        .json();
    assert_eq!(
        v["conflicts"],
        serde_json::json!([target.join("app/small.txt")])
    );
    assert_eq!(fs::read(target.join("app/small.txt")).unwrap(), b"mine");
    assert_eq!(files_below(&target), vec!["app/small.txt"]);
}

// ---------------------------------------------------------------- config file

#[test]
fn config_file_source_with_relative_paths_backs_up_and_restores() {
    let ws = Workspace::init();
    let proj = ws.path("proj");
    write_file(
        &proj.join("supabase/config.toml"),
        b"[api]\nport = 54321\n",
        0o644,
        T0,
    );
    write_file(
        &proj.join("supabase/migrations/001_init.sql"),
        b"create table t (id int);\n",
        0o644,
        T0,
    );
    write_file(&proj.join("package.json"), b"{\"name\":\"x\"}\n", 0o644, T0);
    write_file(&proj.join("notes.tmp"), b"scratch", 0o644, T0);
    write_file(
        &proj.join(".env"),
        b"SECRET_KEY=abc123\nMODE=prod\n",
        0o600,
        T0,
    );
    let cfg = proj.join("lifeboat.toml");
    fs::write(
        &cfg,
        r#"
[repository]
url = "../repo"
password_file = "../pass"

[[source]]
name = "config"
kind = "files"
paths = ["supabase/config.toml", "supabase/migrations", "package.json", ".env", "notes.tmp"]
exclude = ["*.tmp"]
"#,
    )
    .unwrap();
    // No LIFEBOAT_* variables, and a working directory the relative paths do not resolve from.
    let run = |args: &[&str]| {
        let mut c = bare_cmd();
        c.current_dir("/");
        let mut a = vec!["--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        run_cmd(c, &a)
    };
    let r = run(&["--json", "backup", "config"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["snapshot"]["source"], "config");
    assert_eq!(v["snapshot"]["stats"]["files"], 4, "{v}");
    let out = ws.path("out");
    run(&[
        "restore",
        "latest",
        "--source",
        "config",
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    let mut top: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        vec![".env", "config.toml", "migrations", "package.json"]
    );
    assert_same_tree(&proj.join("supabase/migrations"), &out.join("migrations"));
    assert_same_tree(&proj.join("supabase/config.toml"), &out.join("config.toml"));
    assert_same_tree(&proj.join("package.json"), &out.join("package.json"));
    assert_eq!(
        fs::read_to_string(out.join(".env")).unwrap(),
        "SECRET_KEY=<redacted>\nMODE=prod\n"
    );
    // The same repository through the environment sees the snapshot.
    assert_eq!(ws.snapshots()[0]["source"], "config");
}

// ---------------------------------------------------------------- partial failure

#[test]
fn unreadable_entry_gives_exit_3_with_a_warning_and_the_snapshot_is_saved() {
    let ws = Workspace::init();
    let src = ws.path("src");
    write_file(&src.join("good.txt"), b"good\n", 0o644, T0);
    write_file(&src.join("d/also.txt"), b"also\n", 0o644, T0);
    let fifo = src.join("d/pipe");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let r = ws.run(&["backup", src.to_str().unwrap()]);
    r.code(3);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(
        warnings[0].contains(fifo.to_str().unwrap()) && warnings[0].contains("FIFO"),
        "{}",
        warnings[0]
    );
    assert!(r.stdout.contains("snapshot "), "{}", r.stdout);
    let snaps = ws.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["meta"]["warnings"], 1);
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(files_below(&out), vec!["src/d/also.txt", "src/good.txt"]);
    assert!(!out.join("src/d/pipe").exists());
    assert_eq!(fs::read(out.join("src/good.txt")).unwrap(), b"good\n");
}

// ---------------------------------------------------------------- killed process

/// A backup killed with SIGKILL after it has written packs leaves no
/// snapshot pointing at missing data: verify --read-data passes (the packs
/// without an index are only noted), and the next backup stores the data and
/// restores it identically.
#[test]
fn killed_backup_leaves_a_consistent_repository_and_the_next_backup_succeeds() {
    let ws = Workspace::init();
    let src = ws.path("big");
    for i in 0..12u64 {
        write_file(
            &src.join(format!("part-{i}.bin")),
            &pseudo_random(12 << 20, 100 + i),
            0o644,
            T0,
        );
    }
    let mut child = ws
        .cmd()
        .args(["--quiet", "backup"])
        .arg(&src)
        .spawn()
        .expect("spawn backup");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let has_pack = ws.repo.join("data").is_dir() && !packs(&ws.repo).is_empty();
        // The kill must land mid-write: a backup that already finished
        // would turn this into a plain backup test.
        let status = child.try_wait().expect("poll backup");
        assert!(
            status.is_none(),
            "the backup finished ({status:?}) before it was killed: use more data"
        );
        if has_pack {
            child.kill().expect("kill backup");
            let status = child.wait().expect("reap backup");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "killed by SIGKILL, not finished: {status:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup wrote no pack within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!packs(&ws.repo).is_empty());
    let objects = |dir: &str| {
        let d = ws.repo.join(dir);
        if d.is_dir() {
            files_below(&d)
        } else {
            Vec::new()
        }
    };
    assert!(
        objects("snapshots").is_empty(),
        "a killed backup must not leave a snapshot"
    );
    assert!(
        objects("index").is_empty(),
        "killed before its first index file"
    );
    assert_eq!(ws.snapshots().len(), 0);
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "verify after a killed backup: {report}");
    assert_eq!(report["ok"], true, "{report}");
    let unindexed = report["report"]["unindexed_packs"].as_u64().unwrap();
    assert!(
        unindexed >= 1 && unindexed as usize == packs(&ws.repo).len(),
        "the killed backup's packs are noted as unindexed: {report}"
    );

    ws.backup(&[src.to_str().unwrap()]);
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_same_tree(&src, &out.join("big"));
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
}

// ---------------------------------------------------------------- review regressions

/// `backup ..` must be stored under the directory's real name, so restore
/// stays inside `--to`; a path with no last component (`/`) is refused.
#[test]
fn backup_of_a_dotdot_path_restores_inside_the_target_and_root_is_refused() {
    let ws = Workspace::init();
    let src = ws.path("proj");
    write_file(&src.join("sub/a.txt"), b"a", 0o644, T0);
    ws.backup(&[src.join("sub/..").to_str().unwrap()]);
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(out.join("proj/sub/a.txt")).unwrap(), b"a");
    assert_eq!(files_below(&out).len(), 1, "nothing outside out/proj");
    ws.run(&["backup", "/"]).error(15, &["no last component"]);
}

/// A file whose bytes equal an empty tree (`{"nodes":[]}`) is stored first;
/// a later empty directory reuses that blob as its tree and still restores.
#[test]
fn a_file_with_the_bytes_of_a_tree_does_not_break_empty_directories() {
    let ws = Workspace::init();
    let d = ws.path("d");
    write_file(&d.join("a.json"), br#"{"nodes":[]}"#, 0o644, T0);
    ws.backup(&[d.to_str().unwrap()]);
    let e = ws.path("e");
    fs::create_dir_all(e.join("empty")).unwrap();
    ws.backup(&[e.to_str().unwrap()]);
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert!(out.join("e/empty").is_dir());
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
}

/// A directory of 50k entries with a split threshold of 500 entries per
/// tree blob (`LIFEBOAT_TREE_PART_NODES`) is stored as a chain of 100 tree
/// blobs instead of one unbounded one, lists, restores every entry, and an
/// unchanged second backup adds nothing (the chain is deterministic).
#[test]
fn a_huge_directory_is_stored_as_a_chain_of_bounded_tree_blobs_and_restores() {
    let ws = Workspace::init();
    let src = ws.path("huge");
    let dir = src.join("d");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..50_000u32 {
        fs::write(dir.join(format!("f{i:06}")), b"").unwrap();
    }
    write_file(&dir.join("f025000"), b"the middle one\n", 0o600, T0);
    let split = [("LIFEBOAT_TREE_PART_NODES", OsStr::new("500"))];
    let backup = |args: &[&str]| {
        let r = ws.run_env(args, &split);
        r.ok();
        r.json()
    };
    let first = backup(&["--json", "backup", src.to_str().unwrap()]);
    // 100 parts for d/, one root tree holding huge/, and 1 content blob.
    assert_eq!(first["snapshot"]["stats"]["new_blobs"], 103, "{first}");
    let second = backup(&["--json", "backup", src.to_str().unwrap()]);
    assert_eq!(second["snapshot"]["stats"]["new_blobs"], 0, "{second}");
    assert_eq!(second["snapshot"]["tree"], first["snapshot"]["tree"]);

    let ls = ws.run(&["ls", "latest", "huge/d"]);
    ls.ok();
    assert_eq!(
        ls.stdout.lines().filter(|l| l.contains("/f")).count(),
        50_000
    );
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    let mut names: Vec<String> = fs::read_dir(out.join("huge/d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = (0..50_000u32).map(|i| format!("f{i:06}")).collect();
    assert_eq!(names, want);
    assert_eq!(
        fs::read(out.join("huge/d/f025000")).unwrap(),
        b"the middle one\n"
    );
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
    // Read without the knob, the same repository restores the same way.
    ws.run(&[
        "restore",
        "latest",
        "--to",
        ws.path("out2").to_str().unwrap(),
        "--path",
        "huge/d/f049999",
    ])
    .ok();
    assert!(ws.path("out2/f049999").is_file());
}

/// Give `path` and everything below it to `uid` (without following symlinks).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// The re-backup matches a wide directory's listing against the parent
/// snapshot's entries (a merge of two lists sorted by name bytes, across
/// every part of a split directory) and reuses what is unchanged without
/// opening it. Proved with a file nobody may read: the first backup runs as
/// root, the second as `nobody`, after entries were added, removed and
/// renamed before it, next to names whose lossy UTF-8 form sorts elsewhere
/// than their bytes. Had the match missed it, opening it would fail with a
/// warning (exit 3). The restore compares every file's content.
#[test]
fn a_rebackup_of_a_wide_split_directory_reuses_unchanged_files_without_opening_them() {
    const TEST: &str =
        "a_rebackup_of_a_wide_split_directory_reuses_unchanged_files_without_opening_them";
    if !std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    }) {
        return skip_or_fail(TEST, "needs root (to run the second backup as nobody)");
    }
    const NOBODY: u32 = 65534;
    let ws = Workspace::init();
    fs::set_permissions(ws.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = ws.path("wide");
    let dir = src.join("d");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..3000u32 {
        fs::write(dir.join(format!("f{i:05}")), format!("file {i}\n")).unwrap();
    }
    let odd_names: [&[u8]; 4] = [
        b"f01500\xff",
        "f01500\u{e9}".as_bytes(),
        b"f01500\xc3",
        b"F",
    ];
    for (i, name) in odd_names.iter().enumerate() {
        fs::write(dir.join(OsStr::from_bytes(name)), format!("odd {i}\n")).unwrap();
    }
    // In the last part of the split directory (500 entries per part).
    let locked = dir.join("f02900-locked");
    write_file(&locked, b"only root reads this\n", 0o000, T0);
    chown_tree(&src, NOBODY);
    let split = [("LIFEBOAT_TREE_PART_NODES", OsStr::new("500"))];
    let first = ws.run_env(&["--json", "backup", src.to_str().unwrap()], &split);
    first.ok();

    for i in 1000..1010u32 {
        fs::remove_file(dir.join(format!("f{i:05}"))).unwrap();
    }
    for name in ["f01000a", "f01004-new", "f02899z"] {
        fs::write(dir.join(name), format!("new {name}\n")).unwrap();
    }
    fs::write(dir.join(OsStr::from_bytes(b"f01500\xfe")), b"new odd\n").unwrap();
    fs::rename(dir.join("f01200"), dir.join("f01200-renamed")).unwrap();
    fs::remove_file(dir.join(OsStr::from_bytes(b"f01500\xc3"))).unwrap();
    // (Not chowning the source again: that would change every ctime.)
    chown_tree(&ws.repo, NOBODY);
    std::os::unix::fs::lchown(&ws.pass, Some(NOBODY), Some(NOBODY)).unwrap();
    let second = ws.run_with(&["--json", "backup", src.to_str().unwrap()], |c| {
        use std::os::unix::process::CommandExt;
        c.envs(split)
            .env("HOME", ws.tmp.path())
            .uid(NOBODY)
            .gid(NOBODY);
    });
    second.ok();
    let v = second.json();
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    assert_eq!(v["snapshot"]["parent"], first.json()["id"], "{v}");

    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert_same_tree(&src, &out.join("wide"));
    assert_eq!(
        fs::read(out.join("wide/d/f02900-locked")).unwrap(),
        b"only root reads this\n"
    );
}

/// Key files are plaintext: a malformed one must not lock out the valid ones.
#[test]
fn a_malformed_key_file_does_not_lock_out_the_others() {
    let ws = Workspace::init();
    let bogus = r#"{"version":1,"kdf":"argon2id","params":{"m_cost":4294967295,"t_cost":3,"p_cost":1},"salt":"zz","wrapped":"00","created":"","host":"","user":""}"#;
    for name in ["0".repeat(64), "f".repeat(64)] {
        fs::write(ws.repo.join("keys").join(name), bogus).unwrap();
    }
    let r = ws.run(&["--json", "snapshots"]);
    r.ok();
    assert_eq!(r.json(), serde_json::json!([]));
}

/// A key file that parses but can unlock nothing (bad hex, impossible costs).
const UNUSABLE_KEY: &str = r#"{"version":1,"kdf":"argon2id","params":{"m_cost":4294967295,"t_cost":3,"p_cost":1},"salt":"zz","wrapped":"00","created":"","host":"","user":""}"#;

/// The only key file of `ws` (its id and path).
fn the_key_file(ws: &Workspace) -> (String, PathBuf) {
    let (key, path) = only_object(&ws.repo, "keys");
    (key.trim_start_matches("keys/").to_string(), path)
}

/// Run with an exported raw key file instead of the password.
fn run_with_key_file(ws: &Workspace, key: &Path, args: &[&str]) -> Run {
    ws.run_with(args, |c| {
        c.env_remove("LIFEBOAT_PASSWORD_FILE")
            .env("LIFEBOAT_KEY_FILE", key);
    })
}

/// Regression: the last-key guard counted key files that open nothing, so a
/// session opened with a raw key could remove the only usable key file and
/// leave a repository no passphrase opens.
#[test]
fn key_remove_refuses_the_last_usable_key_when_the_others_open_nothing() {
    let ws = Workspace::init();
    let raw = ws.path("raw.key");
    ws.run(&["key", "export", "-o", raw.to_str().unwrap()]).ok();
    let (real, real_path) = the_key_file(&ws);
    fs::write(ws.repo.join("keys").join("0".repeat(64)), UNUSABLE_KEY).unwrap();
    run_with_key_file(&ws, &raw, &["key", "remove", &real[..12]]).error(
        15,
        &[&real[..8], "last key file that can unlock", "key add"],
    );
    assert!(
        real_path.is_file(),
        "the usable key file must still be there"
    );
    ws.run(&["snapshots"]).ok();
    // The unusable one can be removed, the usable one stays.
    run_with_key_file(&ws, &raw, &["key", "remove", &"0".repeat(12)]).ok();
    assert_eq!(files_below(&ws.repo.join("keys")), vec![real.clone()]);
    ws.run(&["snapshots"]).ok();
}

/// Regression: one key file that is not JSON made `key list` and `key
/// remove` fail although opening skips it; it is listed as unusable and can
/// be removed.
#[test]
fn a_non_json_key_file_is_listed_as_unusable_and_can_be_removed() {
    let ws = Workspace::init();
    let (real, _) = the_key_file(&ws);
    let junk = "a".repeat(64);
    fs::write(ws.repo.join("keys").join(&junk), b"\x00 not json").unwrap();
    let keys = key_list(&ws, &ws.pass);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0]["id"], real.as_str());
    assert_eq!(keys[0]["usable"], true);
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[1]["id"], junk.as_str());
    assert_eq!(keys[1]["usable"], false);
    let problem = keys[1]["problem"].as_str().unwrap();
    assert!(problem.contains("not a key file"), "{problem}");
    let table = ws.run(&["key", "list"]);
    table.ok();
    assert!(
        table.stdout.contains(&junk[..8]) && table.stdout.contains("unreadable: "),
        "{}",
        table.stdout
    );
    ws.run(&["key", "remove", &junk[..12]]).ok();
    assert_eq!(files_below(&ws.repo.join("keys")), vec![real]);
    assert_eq!(key_list(&ws, &ws.pass).len(), 1);
}

/// Regression: a key file of a newer version was reported as a wrong
/// password; it is exit 13 with "upgrade lifeboat" when no other key opens.
#[test]
fn a_key_file_of_an_unknown_version_asks_to_upgrade_lifeboat() {
    let ws = Workspace::init();
    let (real, path) = the_key_file(&ws);
    let mut kf: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    kf["version"] = serde_json::json!(2);
    fs::write(&path, serde_json::to_vec(&kf).unwrap()).unwrap();
    ws.run(&["snapshots"]).error(
        13,
        &[&format!("keys/{real}"), "has version 2", "upgrade lifeboat"],
    );
    // A wrong password without newer key files is still exit 11.
    fs::remove_file(&path).unwrap();
    fs::write(ws.repo.join("keys").join("0".repeat(64)), UNUSABLE_KEY).unwrap();
    ws.run(&["snapshots"]).error(11, &["wrong password"]);
}

/// Environment files are always read again: a parent stored redacted must
/// not stand in for a later `--no-redact` backup of the unchanged file, even
/// when the secret has the length of `<redacted>`.
#[test]
fn no_redact_backup_after_a_redacted_one_stores_the_real_content() {
    let ws = Workspace::init();
    let src = ws.path("app");
    let dotenv = "API_TOKEN=0123456789\n";
    write_file(&src.join(".env"), dotenv.as_bytes(), 0o600, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let b = ws.backup(&["--no-redact", src.to_str().unwrap()]);
    let out = ws.path("out");
    ws.run(&["restore", &snapshot_id(&b), "--to", out.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(out.join("app/.env")).unwrap(), dotenv);
}

/// An environment file too large to redact in memory is not stored at all
/// (exit 3 with a warning), never stored with its secrets.
#[test]
fn an_environment_file_too_large_to_redact_is_skipped_with_a_warning() {
    let ws = Workspace::init();
    let src = ws.path("app");
    let mut big = b"SECRET_KEY=hunter2\n".to_vec();
    big.resize(17 << 20, b'#');
    write_file(&src.join("prod.env"), &big, 0o600, T0);
    write_file(&src.join("ok.txt"), b"ok", 0o644, T0);
    let r = ws.run(&["backup", src.to_str().unwrap()]);
    r.code(3);
    assert!(
        r.stderr.contains("prod.env") && r.stderr.contains("not stored"),
        "{}",
        r.stderr
    );
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    assert!(!out.join("app/prod.env").exists());
    assert_eq!(fs::read(out.join("app/ok.txt")).unwrap(), b"ok");
    let stored: u64 = packs(&ws.repo).iter().map(|p| p.2).sum();
    assert!(
        stored < 1 << 20,
        "the large file's data must not be in the repository ({stored} bytes)"
    );
}

/// Data the index no longer knows is damage (exit 12), not "not found".
#[test]
fn restore_with_a_missing_index_file_exits_12() {
    let ws = Workspace::init();
    let src = ws.path("app");
    write_file(&src.join("a.bin"), &pseudo_random(100_000, 7), 0o644, T0);
    ws.backup(&[src.to_str().unwrap()]);
    let (_, index) = only_object(&ws.repo, "index");
    fs::remove_file(index).unwrap();
    let out = ws.path("out");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .error(12, &["not in the index"]);
}

/// The repository's disk fills up during a backup: the backup fails with
/// exit 17 naming the problem, leaves no snapshot and no temp file, and the
/// earlier snapshot still verifies and restores.
#[test]
fn a_full_repository_disk_fails_the_backup_with_exit_17_and_loses_nothing() {
    let Some(tmpfs) = tmpfs_or_skip(
        "a_full_repository_disk_fails_the_backup_with_exit_17_and_loses_nothing",
        "4m",
    ) else {
        return;
    };
    let ws = Workspace::new();
    let repo = tmpfs.path.join("repo");
    let run = |args: &[&str]| ws.run_on(&repo, args);
    run(&["init"]).ok();
    let small = ws.path("small");
    write_file(&small.join("a.txt"), b"first snapshot", 0o644, T0);
    run(&["backup", small.to_str().unwrap()]).ok();
    let big = ws.path("big");
    for i in 0..4u64 {
        write_file(
            &big.join(format!("{i}.bin")),
            &pseudo_random(3 << 20, 40 + i),
            0o644,
            T0,
        );
    }
    let line = run(&["backup", big.to_str().unwrap()]).error(17, &["no space"]);
    assert!(line.contains(&tmpfs.path.display().to_string()), "{line}");
    let r = run(&["--json", "snapshots"]);
    r.ok();
    assert_eq!(
        r.json().as_array().unwrap().len(),
        1,
        "no snapshot from the failed backup"
    );
    let leftovers: Vec<String> = files_below(&repo)
        .into_iter()
        .filter(|f| f.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let r = run(&["--json", "verify", "--read-data"]);
    r.ok();
    assert_eq!(r.json()["ok"], true);
    let out = ws.path("out");
    run(&["restore", "latest", "--to", out.to_str().unwrap()]).ok();
    assert_same_tree(&small, &out.join("small"));
}

#[test]
fn passwd_replaces_the_key_in_use_and_is_refused_with_a_raw_key_file() {
    let ws = Workspace::init();
    let new_pw = ws.password_file("new-pass", "a new passphrase");
    let r = ws.run(&[
        "--json",
        "key",
        "passwd",
        "--new-password-file",
        new_pw.to_str().unwrap(),
    ]);
    r.ok();
    let new_id = r.json()["id"].as_str().unwrap().to_string();
    let keys: Vec<_> = fs::read_dir(ws.repo.join("keys")).unwrap().collect();
    assert_eq!(keys.len(), 1, "the old key file is gone");
    ws.run(&["snapshots"]).error(11, &["wrong password"]);
    let with_new = |args: &[&str]| {
        ws.run_with(args, |c| {
            c.env("LIFEBOAT_PASSWORD_FILE", &new_pw);
        })
    };
    let r = with_new(&["--json", "key", "list"]);
    r.ok();
    assert_eq!(r.json()[0]["id"], new_id.as_str());

    let raw = ws.path("raw.key");
    with_new(&["key", "export", "-o", raw.to_str().unwrap()]).ok();
    let r = ws.run_with(
        &[
            "key",
            "passwd",
            "--new-password-file",
            new_pw.to_str().unwrap(),
        ],
        |c| {
            c.env_remove("LIFEBOAT_PASSWORD_FILE")
                .env("LIFEBOAT_KEY_FILE", &raw);
        },
    );
    r.error(15, &["passwd", "not a key file"]);
    assert_eq!(fs::read_dir(ws.repo.join("keys")).unwrap().count(), 1);
}
