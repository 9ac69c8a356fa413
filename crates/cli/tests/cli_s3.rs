//! The CLI on an S3 repository (a local moto_server started by each test,
//! stopped on drop, also on failure): init, files backup, restore compared
//! by content, verify --read-data, keys, kill -9 during a backup, two
//! concurrent backups, a missing bucket, and the local metadata cache.

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
            .env("AWS_REGION", "us-east-1")
            .env("XDG_CACHE_HOME", self.ws.path("cache"));
        c
    }

    /// This repository's local cache directory (the only one under the
    /// workspace's cache home), when there is one.
    fn cache_dir(&self) -> Option<PathBuf> {
        let base = self.ws.path("cache/lifeboat");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
            .ok()?
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(dirs.len() <= 1, "one repository cached: {dirs:?}");
        dirs.pop()
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

/// Files below `dir`, as paths relative to it.
fn cached_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_local_cache_holds_index_snapshots_and_tree_packs_and_never_trusts_a_bad_entry() {
    use std::os::unix::fs::PermissionsExt;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "cache");
    s.run(&["init"]).ok();
    let src = small_tree(&s.ws, "src", 3);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    // Written through by the backup: index file, snapshot, tree pack (only).
    let dir = s.cache_dir().expect("a cache directory for the repository");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "cache directory is private");
    let index = cached_files(&dir, "index");
    let snaps = cached_files(&dir, "snapshots");
    let packs = cached_files(&dir, "data");
    assert_eq!(
        (index.len(), snaps.len(), packs.len()),
        (1, 1, 1),
        "{index:?} {snaps:?} {packs:?}"
    );
    let pack_len = std::fs::metadata(&packs[0]).unwrap().len();
    assert!(
        pack_len < 1 << 20,
        "only the tree pack is cached ({pack_len} bytes), not the 9 MiB of data"
    );
    // Damaged entries are discarded and fetched again, never trusted.
    flip_byte(&packs[0], 10);
    flip_byte(&index[0], 10);
    std::fs::write(&snaps[0], b"truncated").unwrap();
    s.restore_and_compare("latest", &src, "src");
    for f in [&packs[0], &index[0], &snaps[0]] {
        assert!(f.exists(), "{} fetched again", f.display());
    }
    let listed = s.run(&["ls", "latest"]);
    listed.ok();
    assert!(listed.stdout.contains("big.bin"), "{}", listed.stdout);
    // An entry the repository no longer has is removed from the cache.
    write_file(&src.join("d1/more.txt"), b"more\n", 0o644, T0);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    assert_eq!(cached_files(&dir, "snapshots").len(), 2);
    let first = s.snapshots()[0]["id"].as_str().unwrap().to_string();
    s.run(&["forget", "--keep-last", "1"]).ok();
    s.run(&["snapshots"]).ok();
    let left = cached_files(&dir, "snapshots");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        !left[0].to_string_lossy().contains(&first),
        "the forgotten snapshot left the cache"
    );
    // --no-cache (and `cache = false`) use none.
    let fresh = s.ws.path("fresh-cache");
    let mut c = s.cmd();
    c.env("XDG_CACHE_HOME", &fresh);
    run_cmd(c, &["--no-cache", "ls", "latest"]).ok();
    assert!(!fresh.exists(), "--no-cache created {}", fresh.display());
}

/// A TCP proxy in front of moto that can go down and come back on the same
/// port while moto keeps its state: a stopped S3 endpoint, restarted.
/// It goes down by itself once `down_after` bytes went upstream, so the
/// outage lands in the middle of a backup without any timing.
struct Outage {
    port: u16,
    state: std::sync::Arc<OutageState>,
}

#[derive(Default)]
struct OutageState {
    up: std::sync::atomic::AtomicBool,
    sent: std::sync::atomic::AtomicU64,
    down_after: u64,
    went_down: std::sync::Mutex<bool>,
    went_down_cv: std::sync::Condvar,
    conns: std::sync::Mutex<Vec<std::net::TcpStream>>,
}

impl Outage {
    fn start(upstream: u16, down_after: u64) -> Self {
        let port = lifeboat_storage::moto::free_port();
        let state = std::sync::Arc::new(OutageState {
            down_after,
            ..OutageState::default()
        });
        let o = Outage { port, state };
        o.serve(upstream);
        o
    }

    /// Accept on the port until the proxy goes down.
    fn serve(&self, upstream: u16) {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        self.state.up.store(true, Ordering::SeqCst);
        let state = self.state.clone();
        std::thread::spawn(move || {
            while state.up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream))
                        else {
                            continue;
                        };
                        let mut conns = state.conns.lock().unwrap();
                        conns.push(client.try_clone().unwrap());
                        conns.push(server.try_clone().unwrap());
                        drop(conns);
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            Some(state.clone()),
                        );
                        pipe(server, client, None);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            // Dropping the listener refuses new connections from here on.
        });
    }

    /// Wait until the proxy went down by itself (after `down_after` bytes).
    fn wait_down(&self) {
        let mut down = self.state.went_down.lock().unwrap();
        while !*down {
            down = self.state.went_down_cv.wait(down).unwrap();
        }
    }

    fn restart(&self, upstream: u16) {
        self.serve(upstream);
    }
}

/// Copy `from` to `to` until either closes; the upstream direction counts
/// bytes and takes the whole proxy down past its threshold.
fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    count: Option<std::sync::Arc<OutageState>>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            if let Some(state) = &count {
                let sent = state.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                let trip = sent >= state.down_after && !*state.went_down.lock().unwrap();
                if trip && state.up.swap(false, Ordering::SeqCst) {
                    for c in state.conns.lock().unwrap().drain(..) {
                        let _ = c.shutdown(std::net::Shutdown::Both);
                    }
                    *state.went_down.lock().unwrap() = true;
                    state.went_down_cv.notify_all();
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[test]
fn an_s3_endpoint_that_goes_down_mid_backup_and_comes_back_loses_nothing() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = S3Ws::new(&moto, "outage");
    s.run(&["init"]).ok();
    let first = small_tree(&s.ws, "first", 5);
    s.run(&["backup", first.to_str().unwrap()]).ok();
    // The next backup goes through the proxy, which drops every
    // connection and refuses new ones once 24 MiB went up (mid-upload of
    // ~40 MiB of new packs), and comes back on the same port 3 s later.
    let src = s.ws.path("second");
    for i in 0..5u64 {
        write_file(
            &src.join(format!("part{i}.bin")),
            &pseudo_random(8 << 20, 100 + i),
            0o600,
            T0,
        );
    }
    let proxy = Outage::start(moto.port(), 24 << 20);
    let mut c = s.cmd();
    c.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", proxy.port),
    )
    .args(["backup", src.to_str().unwrap()])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = c.spawn().expect("start backup");
    proxy.wait_down();
    std::thread::sleep(std::time::Duration::from_secs(3));
    proxy.restart(moto.port());
    let out = child.wait_with_output().expect("backup ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    // It retries through (or, had the outage outlasted the retries, fails
    // with one clear line): never a success with something missing.
    eprintln!("backup through the outage: exit {code}: {stderr}");
    assert!(
        code == 0 || (code == 1 && stderr.trim().lines().count() == 1),
        "exit {code}: {stderr}"
    );
    assert!(proxy.state.sent.load(std::sync::atomic::Ordering::SeqCst) >= 24 << 20);
    // Everything acknowledged is there: every listed snapshot restores.
    let snaps = s.snapshots();
    assert_eq!(snaps.len(), if code == 0 { 2 } else { 1 }, "{stderr}");
    s.restore_and_compare(snaps[0]["id"].as_str().unwrap(), &first, "first");
    if code == 0 {
        s.restore_and_compare(snaps[1]["id"].as_str().unwrap(), &src, "second");
    }
    s.verify_read_data();
    // An endpoint that stays down: the backup fails with one line naming
    // the cause and the fix, and saves no snapshot.
    let dead = Outage::start(moto.port(), 1);
    let mut c = s.cmd();
    c.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", dead.port),
    );
    let r = run_cmd(c, &["backup", src.to_str().unwrap()]);
    r.error(
        1,
        &[
            "cannot reach the S3 endpoint",
            "connection refused",
            "AWS_ENDPOINT_URL",
        ],
    );
    assert_eq!(s.snapshots().len(), if code == 0 { 2 } else { 1 });
    // And the next backup (direct) works and restores.
    s.run(&["backup", src.to_str().unwrap()]).ok();
    s.restore_and_compare("latest", &src, "second");
}
