//! `wal push` / `wal fetch` / `wal list` with the real binary on a local
//! repository and a data directory laid out as PostgreSQL's (global/pg_control
//! naming the cluster, pg_wal/ holding segments of random content).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
const SEG: &str = "000000010000000000000003";

struct Env {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    pw: PathBuf,
    pgdata: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let pw = tmp.path().join("pw");
        fs::write(&pw, "secret").unwrap();
        let pgdata = tmp.path().join("pgdata");
        fs::create_dir_all(pgdata.join("global")).unwrap();
        fs::create_dir_all(pgdata.join("pg_wal")).unwrap();
        let mut control = 7_312_345_678_901_234_567u64.to_ne_bytes().to_vec();
        control.resize(8192, 0);
        fs::write(pgdata.join("global/pg_control"), control).unwrap();
        let e = Env {
            _tmp: tmp,
            repo,
            pw,
            pgdata,
        };
        assert!(e.run(&["init"]).status.success());
        e
    }

    /// Run in the data directory, as PostgreSQL runs archive/restore commands.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .current_dir(&self.pgdata)
            .env_clear()
            .arg("--repo")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(&self.pw)
            .args(args)
            .output()
            .unwrap()
    }

    fn wal(&self, name: &str) -> PathBuf {
        self.pgdata.join("pg_wal").join(name)
    }

    fn object(&self, name: &str) -> PathBuf {
        self.repo
            .join("wal/7312345678901234567")
            .join(&name[..8])
            .join(name)
    }
}

fn random(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    // Half compressible, as WAL is.
    out[..n / 2].fill(seed);
    out
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into()
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn pushed_segments_history_and_labels_fetch_byte_identical() {
    let e = Env::new();
    let names = [
        "000000010000000000000001",
        "000000010000000000000002",
        "000000010000000000000002.00000028.backup",
        "00000002.history",
        "000000020000000000000005",
    ];
    for (i, n) in names.iter().enumerate() {
        fs::write(e.wal(n), random(1 << 20, i as u8)).unwrap();
        let o = e.run(&["wal", "push", &format!("pg_wal/{n}")]);
        assert_eq!(code(&o), 0, "{n}: {}", stderr(&o));
    }
    fs::create_dir_all(e.pgdata.join("restore")).unwrap();
    for n in names {
        let o = e.run(&["wal", "fetch", n, "pg_wal/RECOVERYXLOG"]);
        assert_eq!(code(&o), 0, "{n}: {}", stderr(&o));
        assert_eq!(
            fs::read(e.wal("RECOVERYXLOG")).unwrap(),
            fs::read(e.wal(n)).unwrap(),
            "{n}"
        );
    }
    let o = e.run(&["--json", "wal", "list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["system_id"], 7_312_345_678_901_234_567u64);
    let tl = &v["timelines"];
    assert_eq!(tl[0]["timeline"], "00000001");
    assert_eq!(tl[0]["segments"], 2);
    assert_eq!(tl[0]["gaps"].as_array().unwrap().len(), 0);
    assert_eq!(tl[1]["timeline"], "00000002");
    assert_eq!(tl[1]["other_files"][0], "00000002.history");
}

#[test]
fn identical_repush_succeeds_and_different_content_is_refused() {
    let e = Env::new();
    let seg = format!("pg_wal/{SEG}");
    fs::write(e.wal(SEG), random(1 << 20, 1)).unwrap();
    assert_eq!(code(&e.run(&["wal", "push", &seg])), 0);
    let stored = fs::read(e.object(SEG)).unwrap();
    let again = e.run(&["wal", "push", &seg]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    fs::write(e.wal(SEG), random(1 << 20, 2)).unwrap();
    let o = e.run(&["wal", "push", &seg]);
    assert_eq!(code(&o), 20, "{}", stderr(&o));
    assert!(stderr(&o).contains(SEG), "{}", stderr(&o));
    assert!(stderr(&o).contains("different WAL file"), "{}", stderr(&o));
    assert_eq!(
        fs::read(e.object(SEG)).unwrap(),
        stored,
        "never overwritten"
    );
}

#[test]
fn fetch_of_a_missing_segment_fails_without_creating_the_destination() {
    let e = Env::new();
    let o = e.run(&["wal", "fetch", SEG, "pg_wal/RECOVERYXLOG"]);
    assert_eq!(code(&o), 18, "{}", stderr(&o));
    assert!(stderr(&o).contains("not archived"), "{}", stderr(&o));
    assert!(leftovers(&e.pgdata.join("pg_wal")).is_empty());
}

#[test]
fn a_damaged_or_truncated_object_is_reported_and_writes_nothing() {
    let e = Env::new();
    fs::write(e.wal(SEG), random(1 << 20, 3)).unwrap();
    assert_eq!(code(&e.run(&["wal", "push", &format!("pg_wal/{SEG}")])), 0);
    fs::remove_file(e.wal(SEG)).unwrap();
    let obj = e.object(SEG);
    let good = fs::read(&obj).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    for (what, bytes) in [
        ("flipped", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
    ] {
        fs::write(&obj, &bytes).unwrap();
        let o = e.run(&["wal", "fetch", SEG, "pg_wal/RECOVERYXLOG"]);
        assert_eq!(code(&o), 12, "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(SEG), "{what}: {}", stderr(&o));
        assert!(leftovers(&e.pgdata.join("pg_wal")).is_empty(), "{what}");
    }
}

#[test]
fn a_wrong_password_fails_clearly() {
    let e = Env::new();
    fs::write(e.wal(SEG), random(4096, 4)).unwrap();
    fs::write(&e.pw, "not the secret").unwrap();
    let o = e.run(&["wal", "push", &format!("pg_wal/{SEG}")]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password"), "{}", stderr(&o));
}

/// Like [`Env::run`] with the exported raw key (no KDF), as a real
/// `archive_command` runs it.
fn keyed(e: &Env, key: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(&e.pgdata)
        .env_clear()
        .arg("--repo")
        .arg(&e.repo)
        .arg("--key-file")
        .arg(key)
        .args(args);
    c
}

#[test]
fn killed_pushes_are_retried_and_the_archive_ends_intact_without_a_gap() {
    let e = Env::new();
    let key = e.pgdata.parent().unwrap().join("raw.key");
    let o = e.run(&["key", "export", "-o", key.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Twelve 16 MiB segments across the log boundary (…FD to …0100000004).
    let names: Vec<String> = (0xFDu64..0xFD + 12)
        .map(|n| format!("00000001{:08X}{:08X}", n / 256, n % 256))
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut landed = 0;
    for (i, name) in names.iter().enumerate() {
        let data = random(16 << 20, i as u8);
        fs::write(e.wal(name), &data).unwrap();
        let rel = format!("pg_wal/{name}");
        // Three SIGKILLs at random points, then PostgreSQL's retry.
        for _ in 0..3 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut child = keyed(&e, &key, &["wal", "push", &rel])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_micros(rng % 60_000));
            if child.try_wait().unwrap().is_none() {
                landed += 1;
            }
            child.kill().ok();
            child.wait().unwrap();
        }
        let o = keyed(&e, &key, &["wal", "push", &rel]).output().unwrap();
        assert_eq!(code(&o), 0, "retry of {name}: {}", stderr(&o));
    }
    assert!(landed >= 6, "only {landed} kills landed while a push ran");
    let o = keyed(&e, &key, &["--json", "wal", "verify"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(code(&o), 0, "{v}\n{}", stderr(&o));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["bad_objects"], serde_json::json!([]), "{v}");
    assert_eq!(v["timelines"][0]["missing"], serde_json::json!([]), "{v}");
    assert_eq!(v["timelines"][0]["segments"], 12, "{v}");
    assert_eq!(v["last_archived"]["name"], names[11].as_str(), "{v}");
    for (i, name) in names.iter().enumerate() {
        let out = e.pgdata.join("fetched");
        let o = keyed(&e, &key, &["wal", "fetch", name, "fetched"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            fs::read(&out).unwrap() == random(16 << 20, i as u8),
            "{name} differs"
        );
    }
    // No temp file of a killed push is left where a listing would see it.
    let dir = e.repo.join("wal/7312345678901234567/00000001");
    let objects: Vec<String> = leftovers(&dir)
        .into_iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    assert_eq!(objects.len(), 12, "{objects:?}");
}

#[test]
fn wal_verify_reports_a_missing_segment_and_a_damaged_object() {
    let e = Env::new();
    let names = [
        "0000000100000000000000FE",
        "0000000100000000000000FF",
        "000000010000000100000000",
        "000000010000000100000001",
        "000000010000000100000002",
    ];
    for (i, n) in names.iter().enumerate() {
        fs::write(e.wal(n), random(16 << 20, i as u8)).unwrap();
        let o = e.run(&["wal", "push", &format!("pg_wal/{n}")]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = e.run(&["--json", "wal", "verify"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    fs::remove_file(e.object(names[2])).unwrap();
    let mut damaged = fs::read(e.object(names[3])).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    fs::write(e.object(names[3]), damaged).unwrap();
    let o = e.run(&["--json", "wal", "verify"]);
    assert_eq!(code(&o), 12, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["timelines"][0]["missing"],
        serde_json::json!([[names[2], names[2]]]),
        "{v}"
    );
    assert_eq!(v["bad_objects"][0]["name"], names[3], "{v}");
    assert_eq!(v["ok"], false);
}
