//! The CLI on an S3 repository (a local moto_server started by each test,
//! stopped on drop, also on failure): init, files backup, restore compared
//! by content, verify --read-data, keys, kill -9 during a backup, two
//! concurrent backups, and a missing bucket.

mod common;

use common::*;
use lifeboat_storage::moto::{MotoServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An mtime in the past, so restored mtimes cannot come from "now".
const T0: u64 = 1_614_830_400;

/// A workspace whose repository is `s3://<bucket>/repo` on `moto`.
struct S3Ws {
    ws: Workspace,
    url: String,
    endpoint: String,
}

impl S3Ws {
    fn new(moto: &MotoServer, bucket: &str) -> Self {
        moto.create_bucket(bucket);
        S3Ws {
            ws: Workspace::new(),
            url: format!("s3://{bucket}/repo"),
            endpoint: moto.endpoint(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = self.ws.cmd();
        c.env("LIFEBOAT_REPOSITORY", &self.url)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_REGION", "us-east-1");
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        run_cmd(self.cmd(), args)
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        let r = self.run(&["--json", "snapshots"]);
        r.ok();
        r.json().as_array().expect("array").clone()
    }

    fn verify_read_data(&self) {
        let r = self.run(&["--json", "verify", "--read-data"]);
        assert_eq!(r.code, 0, "verify --read-data: {} {}", r.stdout, r.stderr);
        assert_eq!(r.json()["ok"], true, "{}", r.stdout);
    }

    fn restore_and_compare(&self, snapshot: &str, src: &Path, name: &str) {
        let out = self
            .ws
            .path(format!("out-{}", &snapshot[..snapshot.len().min(12)]));
        self.run(&["restore", snapshot, "--to", out.to_str().unwrap()])
            .ok();
        assert_same_tree(src, &out.join(name));
    }
}

fn small_tree(ws: &Workspace, name: &str, seed: u64) -> PathBuf {
    let src = ws.path(name);
    for i in 0..20u64 {
        write_file(
            &src.join(format!("d{}/f{i}.txt", i % 3)),
            &text(2_000 + (i as usize) * 997, seed + i),
            0o640,
            T0 + i,
        );
    }
    write_file(
        &src.join("big.bin"),
        &pseudo_random(9 << 20, seed),
        0o600,
        T0,
    );
    src
}

#[test]
fn init_backup_restore_verify_and_keys_on_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "main");
    let r = s.run(&["init"]);
    r.ok();
    assert!(
        r.stdout.contains("created lifeboat repository"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("s3://main/repo"), "{}", r.stdout);
    let src = small_tree(&s.ws, "src", 1);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    // A second backup with one change stores little and restores both.
    write_file(&src.join("d0/new.txt"), b"new file\n", 0o644, T0);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    let snaps = s.snapshots();
    assert_eq!(snaps.len(), 2);
    s.restore_and_compare("latest", &src, "src");
    s.verify_read_data();
    // Keys: a second password opens the repository, listing shows two keys.
    let second = s.ws.password_file("second", "another long passphrase");
    s.run(&[
        "key",
        "add",
        "--new-password-file",
        second.to_str().unwrap(),
    ])
    .ok();
    let mut c = s.cmd();
    c.env("LIFEBOAT_PASSWORD_FILE", &second);
    let r = run_cmd(c, &["--json", "key", "list"]);
    r.ok();
    assert_eq!(r.json().as_array().map(Vec::len), Some(2), "{}", r.stdout);
}

#[test]
fn a_killed_backup_on_s3_leaves_every_listed_snapshot_restorable() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "kill");
    s.run(&["init"]).ok();
    let first = small_tree(&s.ws, "first", 7);
    s.run(&["backup", first.to_str().unwrap()]).ok();
    let big = s.ws.path("big");
    for i in 0..8u64 {
        write_file(
            &big.join(format!("p{i}.bin")),
            &pseudo_random(12 << 20, 40 + i),
            0o644,
            T0,
        );
    }
    let mut child = s
        .cmd()
        .args(["--quiet", "backup"])
        .arg(&big)
        .spawn()
        .unwrap();
    // Kill once the backup has uploaded at least one pack of its own.
    let packs_before = s3_packs(&s);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before the kill: use more data"
        );
        if s3_packs(&s) > packs_before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let snaps = s.snapshots();
    assert_eq!(snaps.len(), 1, "the killed backup left no snapshot");
    s.verify_read_data();
    s.restore_and_compare("latest", &first, "first");
    // The next backup completes and restores identically.
    s.run(&["backup", big.to_str().unwrap()]).ok();
    s.restore_and_compare("latest", &big, "big");
    s.verify_read_data();
}

/// Packs in the S3 repository, counted through the storage API.
fn s3_packs(s: &S3Ws) -> usize {
    let mut o = lifeboat_storage::s3::S3Options::from_url(&s.url).unwrap();
    o.endpoint = Some(s.endpoint.clone());
    o.path_style = true;
    o.access_key_id = Some(ACCESS_KEY_ID.into());
    o.secret_access_key = Some(SECRET_ACCESS_KEY.into());
    o.region = Some("us-east-1".into());
    let st = lifeboat_storage::s3::S3Storage::new(o).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(lifeboat_storage::Storage::list(&st, "data/"))
        .unwrap()
        .len()
}

#[test]
fn two_concurrent_backups_on_s3_both_land_and_restore() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "two");
    s.run(&["init"]).ok();
    let a = small_tree(&s.ws, "a", 100);
    let b = small_tree(&s.ws, "b", 200);
    let ca = s.cmd().args(["--quiet", "backup"]).arg(&a).spawn().unwrap();
    let cb = s.cmd().args(["--quiet", "backup"]).arg(&b).spawn().unwrap();
    for c in [ca, cb] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let snaps = s.snapshots();
    assert_eq!(snaps.len(), 2);
    for snap in &snaps {
        let id = snap["id"].as_str().unwrap();
        let paths = snap["paths"].to_string();
        let (src, name) = if paths.contains("/a\"") {
            (&a, "a")
        } else {
            (&b, "b")
        };
        s.restore_and_compare(id, src, name);
    }
    s.verify_read_data();
}

#[test]
fn a_missing_bucket_is_one_clear_line_naming_the_fix() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "exists");
    let mut c = s.cmd();
    c.env("LIFEBOAT_REPOSITORY", "s3://no-such-bucket/repo");
    let r = run_cmd(c, &["init"]);
    assert_ne!(r.code, 0);
    let line = r.stderr.trim();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(
        line.contains("bucket does not exist") && line.contains("create it"),
        "{line}"
    );
    let mut c = s.cmd();
    c.env("LIFEBOAT_REPOSITORY", "s3://no-such-bucket/repo");
    let r = run_cmd(c, &["snapshots"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("bucket does not exist"), "{}", r.stderr);
}
