//! `copy` to another repository with its own key: 30 snapshots to an S3
//! repository (a local moto_server) restore identically from the copy and a
//! second copy transfers nothing; a copy killed with -9 is finished by the
//! next one and the target verifies; `copy_to` on a source keeps the target
//! current after each backup; a wrong target name or the repository itself
//! as target are refused clearly.

mod common;

use common::*;
use lifeboat_storage::moto::{MotoServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T0: u64 = 1_614_830_400;

/// A local repository with a config naming `target_url` as
/// `[repositories.offsite]` (its own password), both initialised.
struct CopyWs {
    ws: Workspace,
    config: PathBuf,
    target_pass: PathBuf,
    target_url: String,
    s3: Option<(String, MotoServer)>,
}

impl CopyWs {
    fn new(target_url: &str, s3: Option<MotoServer>, extra_source: &str) -> Self {
        let ws = Workspace::init();
        let target_pass = ws.password_file("pass-offsite", "another passphrase for offsite");
        let config = ws.path("lifeboat.toml");
        let endpoint = s3
            .as_ref()
            .map(|m| format!("endpoint = {:?}\nregion = \"us-east-1\"\n", m.endpoint()))
            .unwrap_or_default();
        let text = format!(
            "[repository]\nurl = {:?}\npassword_file = {:?}\n\n[repositories.offsite]\nurl = {:?}\npassword_file = {:?}\n{endpoint}\n{extra_source}",
            ws.repo.display().to_string(),
            ws.pass.display().to_string(),
            target_url,
            target_pass.display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        let c = CopyWs {
            ws,
            config,
            target_pass,
            target_url: target_url.to_string(),
            s3: s3.map(|m| (m.endpoint(), m)),
        };
        c.on_target(&["init"]).ok();
        c
    }

    fn env(&self, c: &mut Command) {
        c.env("LIFEBOAT_CONFIG", &self.config)
            .env_remove("LIFEBOAT_REPOSITORY")
            .env_remove("LIFEBOAT_PASSWORD_FILE");
        if let Some((endpoint, _)) = &self.s3 {
            c.env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
                .env("AWS_REGION", "us-east-1");
        }
    }

    /// Run on the local (source) repository, through the config.
    fn run(&self, args: &[&str]) -> Run {
        self.ws.run_with(args, |c| self.env(c))
    }

    /// Run on the target repository.
    fn on_target(&self, args: &[&str]) -> Run {
        let mut full = vec![
            "--repo",
            &self.target_url,
            "--password-file",
            self.target_pass.to_str().unwrap(),
        ];
        full.extend_from_slice(args);
        let full: Vec<String> = full.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        self.ws.run_with(&refs, |c| {
            c.env_remove("LIFEBOAT_CONFIG");
            if let Some((endpoint, _)) = &self.s3 {
                c.env("AWS_ENDPOINT_URL", endpoint)
                    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
                    .env("AWS_REGION", "us-east-1");
            }
        })
    }

    fn copy(&self, extra: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json", "copy", "--to", "offsite"];
        a.extend_from_slice(extra);
        let r = self.run(&a);
        r.ok();
        r.json()
    }

    fn snapshot_times(&self, target: bool) -> Vec<String> {
        let r = if target {
            self.on_target(&["--json", "snapshots"])
        } else {
            self.run(&["--json", "snapshots"])
        };
        r.ok();
        let mut t: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["time"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    }

    /// The id of the snapshot taken at `time` in the source or target.
    fn id_at(&self, target: bool, time: &str) -> String {
        let r = if target {
            self.on_target(&["--json", "snapshots"])
        } else {
            self.run(&["--json", "snapshots"])
        };
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["time"] == time)
            .unwrap_or_else(|| panic!("no snapshot at {time}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn verify_target(&self) {
        let r = self.on_target(&["--json", "verify", "--read-data"]);
        assert_eq!(r.code, 0, "verify the target: {} {}", r.stdout, r.stderr);
        assert_eq!(r.json()["ok"], true, "{}", r.stdout);
    }
}

/// Change the data dir for round `i`: a new file, one rewritten, one
/// growing; a large file that stays the same.
fn evolve(dir: &Path, i: u64) {
    if i == 0 {
        write_file(&dir.join("big.bin"), &pseudo_random(3 << 20, 99), 0o600, T0);
    }
    write_file(
        &dir.join(format!("new/f{i:02}.txt")),
        &text(3_000 + i as usize * 101, i),
        0o640,
        T0 + i,
    );
    write_file(
        &dir.join("rewritten.txt"),
        &text(50_000, 1_000 + i),
        0o644,
        T0 + i,
    );
    write_file(
        &dir.join("log/growing.log"),
        &text(20_000 * (i as usize + 1), 7),
        0o644,
        T0 + i,
    );
}

fn backup_rounds(c: &CopyWs, dir: &Path, rounds: u64) {
    for i in 0..rounds {
        evolve(dir, i);
        let time = format!("2026-11-{:02}T02:00:00Z", i + 1);
        let r = c.run(&["--json", "backup", dir.to_str().unwrap(), "--time", &time]);
        r.ok();
    }
}

/// Restore the snapshot taken at `time` from both repositories; compare
/// the restored `name` directories (metadata and content).
fn restore_both_and_compare(c: &CopyWs, time: &str, name: &str) {
    let (orig, copy) = (c.id_at(false, time), c.id_at(true, time));
    let a = c.ws.path(format!("restore-orig-{}", &orig[..8]));
    let b = c.ws.path(format!("restore-copy-{}", &copy[..8]));
    c.run(&["restore", &orig, "--to", a.to_str().unwrap()]).ok();
    c.on_target(&["restore", &copy, "--to", b.to_str().unwrap()])
        .ok();
    let (a, b) = (a.join(name), b.join(name));
    assert!(a.join("rewritten.txt").is_file(), "{}", a.display());
    assert_same_tree(&a, &b);
    assert_eq!(contents(&a), contents(&b), "content of {time}");
}

#[test]
fn thirty_snapshots_copy_to_s3_restore_identically_and_a_second_copy_transfers_nothing() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("offsite");
    let c = CopyWs::new("s3://offsite/lifeboat", Some(moto), "");
    let dir = c.ws.path("data");
    backup_rounds(&c, &dir, 30);

    let first = c.copy(&[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 30, "{first}");
    assert_eq!(first["already_there"], 0, "{first}");
    assert!(first["new_blobs"].as_u64().unwrap() > 30, "{first}");
    assert_eq!(c.snapshot_times(true), c.snapshot_times(false));

    let second = c.copy(&[]);
    assert_eq!(second["copied"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["already_there"], 30, "{second}");
    assert_eq!(second["new_blobs"], 0, "{second}");
    assert_eq!(second["stored_bytes"], 0, "{second}");

    for day in [1, 15, 30] {
        restore_both_and_compare(&c, &format!("2026-11-{day:02}T02:00:00Z"), "data");
    }
    c.verify_target();
    // The copy was encrypted with the target's own key: the source's
    // password does not open it.
    let r =
        c.ws.run_with(&["--repo", "s3://offsite/lifeboat", "snapshots"], |cmd| {
            c.env(cmd)
        });
    assert_eq!(r.code, 11, "{} {}", r.stdout, r.stderr);
}

#[test]
fn a_copy_killed_with_sigkill_is_finished_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let c = CopyWs::new(target.to_str().unwrap(), None, "");
    let dir = c.ws.path("data");
    backup_rounds(&c, &dir, 8);
    for delay_ms in [30u64, 120, 400] {
        let mut cmd = c.ws.cmd();
        c.env(&mut cmd);
        let mut child = cmd
            .args(["copy", "--to", "offsite"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the kill left, every snapshot listed in the target restores.
        c.verify_target();
    }
    c.copy(&[]);
    assert_eq!(c.snapshot_times(true), c.snapshot_times(false));
    c.verify_target();
    restore_both_and_compare(&c, "2026-11-08T02:00:00Z", "data");
    let again = c.copy(&[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn copy_to_on_a_source_keeps_the_target_current_after_each_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let ws_dir = tempfile::tempdir().unwrap();
    let data = ws_dir.path().join("app");
    evolve(&data, 0);
    let source = format!(
        "[[source]]\nname = \"app\"\nkind = \"files\"\npaths = [{:?}]\ncopy_to = [\"offsite\"]\n",
        data.display().to_string()
    );
    let c = CopyWs::new(target.to_str().unwrap(), None, &source);
    for i in 0..2 {
        evolve(&data, i);
        let r = c.run(&["--json", "backup", "app"]);
        r.ok();
        let v = r.json();
        let copies = v["copies"].as_array().expect("copies in the report");
        assert_eq!(copies.len(), 1, "{v}");
        assert_eq!(copies[0]["copied"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(copies[0]["copied"][0]["from"], v["id"], "{v}");
    }
    assert_eq!(c.snapshot_times(true).len(), 2);
    let last = c.snapshot_times(false).pop().unwrap();
    restore_both_and_compare(&c, &last, "app");
    // Text output names the copy.
    evolve(&data, 2);
    let r = c.run(&["backup", "app"]);
    r.ok();
    assert!(r.stdout.contains("copied to offsite"), "{}", r.stdout);
}

#[test]
fn a_wrong_target_or_the_repository_itself_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let c = CopyWs::new(target.to_str().unwrap(), None, "");
    let dir = c.ws.path("data");
    backup_rounds(&c, &dir, 1);
    let r = c.run(&["copy", "--to", "elsewhere"]);
    r.error(15, &["[repositories.elsewhere]", "offsite"]);
    // A target that is the repository itself (same repository id).
    let text = std::fs::read_to_string(&c.config).unwrap().replace(
        &format!("{:?}", c.target_url),
        &format!("{:?}", c.ws.repo.display().to_string()),
    );
    let cfg2 = c.ws.path("self.toml");
    std::fs::write(&cfg2, text.replace("pass-offsite", "pass")).unwrap();
    let r = c.ws.run_with(&["copy", "--to", "offsite"], |cmd| {
        cmd.env("LIFEBOAT_CONFIG", &cfg2)
            .env_remove("LIFEBOAT_REPOSITORY")
            .env_remove("LIFEBOAT_PASSWORD_FILE");
    });
    r.error(15, &["this repository"]);
    // Nothing was copied anywhere by the refusals.
    assert!(c.snapshot_times(true).is_empty());
}

#[test]
fn a_second_backup_with_the_same_time_and_source_is_copied_too() {
    // Two different backups of the same source at the same `--time` (a
    // re-run with the scheduled time): the second is not "already there".
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let c = CopyWs::new(target.to_str().unwrap(), None, "");
    let dir = c.ws.path("data");
    let time = "2026-11-01T02:00:00Z";
    write_file(&dir.join("a.txt"), b"first version", 0o600, T0);
    c.run(&["backup", dir.to_str().unwrap(), "--time", time])
        .ok();
    c.copy(&[]);
    write_file(
        &dir.join("a.txt"),
        b"second, longer version",
        0o600,
        T0 + 60,
    );
    write_file(&dir.join("b.txt"), b"new file", 0o600, T0 + 60);
    c.run(&["backup", dir.to_str().unwrap(), "--time", time])
        .ok();
    let v = c.copy(&[]);
    assert_eq!(v["copied"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(c.snapshot_times(true).len(), 2);
    c.verify_target();
}

#[test]
fn a_failing_copy_to_after_a_backup_names_the_target_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let ws_dir = tempfile::tempdir().unwrap();
    let data = ws_dir.path().join("app");
    evolve(&data, 0);
    let source = format!(
        "[[source]]\nname = \"app\"\nkind = \"files\"\npaths = [{:?}]\ncopy_to = [\"offsite\"]\n",
        data.display().to_string()
    );
    let c = CopyWs::new(target.to_str().unwrap(), None, &source);
    std::fs::remove_file(&c.target_pass).unwrap();
    let r = c.run(&["backup", "app"]);
    assert_ne!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("backup is saved"), "{}", r.stderr);
    assert!(r.stderr.contains("(offsite)"), "{}", r.stderr);
    assert!(r.stderr.contains("lifeboat copy --to"), "{}", r.stderr);
    assert_eq!(c.snapshot_times(false).len(), 1);
}

#[test]
fn snapshots_the_targets_own_retention_removed_are_not_copied_again() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let c = CopyWs::new(target.to_str().unwrap(), None, "");
    let dir = c.ws.path("data");
    backup_rounds(&c, &dir, 3);
    let first = c.copy(&[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 3, "{first}");
    // The offsite repository keeps only its newest snapshot.
    c.on_target(&["forget", "--keep-last", "1"]).ok();
    assert_eq!(c.snapshot_times(true).len(), 1);
    let again = c.copy(&[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_there"], 3, "{again}");
    assert_eq!(c.snapshot_times(true).len(), 1, "nothing brought back");
    // A new backup is copied as usual, and naming a forgotten snapshot
    // explicitly copies it again.
    backup_rounds_from(&c, &dir, 3, 1);
    let next = c.copy(&[]);
    assert_eq!(next["copied"].as_array().unwrap().len(), 1, "{next}");
    let oldest = c.id_at(false, "2026-11-01T02:00:00Z");
    let named = c.copy(&[&oldest]);
    assert_eq!(named["copied"].as_array().unwrap().len(), 1, "{named}");
    restore_both_and_compare(&c, "2026-11-01T02:00:00Z", "data");
}

/// `rounds` more backups after the first `skip` days.
fn backup_rounds_from(c: &CopyWs, dir: &Path, skip: u64, rounds: u64) {
    for i in skip..skip + rounds {
        evolve(dir, i);
        let time = format!("2026-11-{:02}T02:00:00Z", i + 1);
        c.run(&["--json", "backup", dir.to_str().unwrap(), "--time", &time])
            .ok();
    }
}

#[test]
fn a_wrong_target_password_names_the_targets_settings_not_this_repositorys_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("offsite");
    let c = CopyWs::new(target.to_str().unwrap(), None, "");
    let dir = c.ws.path("data");
    backup_rounds(&c, &dir, 1);
    std::fs::write(&c.target_pass, "not the offsite passphrase").unwrap();
    let r = c.run(&["copy", "--to", "offsite"]);
    let line = r.error(11, &["copy target \"offsite\"", "[repositories.offsite]"]);
    assert!(!line.contains("--password-file"), "{line}");
    assert!(!line.contains("LIFEBOAT_PASSWORD_FILE"), "{line}");
}
