//! End-to-end tests of retention: `forget` with the config's policy and
//! with flags, its `--dry-run` table and `--json`, protected and tagged
//! snapshots, and the errors of a missing or bad policy.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const T0: u64 = 1_614_830_400;

/// A workspace with a `docs` files source whose config carries `retention`.
fn setup(retention: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::init();
    write_file(&ws.path("data/a.txt"), b"alpha\n", 0o644, T0);
    let cfg = ws.path("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"data\"]\nretention = {retention}\n"
        ),
    )
    .unwrap();
    (ws, cfg)
}

/// Back up `docs` as of `time` with `tags`, changing the data first so
/// each snapshot has its own content; returns the id.
fn backup_at(ws: &Workspace, cfg: &Path, time: &str, tags: &[&str]) -> String {
    write_file(&ws.path("data/a.txt"), time.as_bytes(), 0o644, T0);
    let c = cfg.to_str().unwrap();
    let mut args = vec!["--config", c, "docs", "--time", time];
    for t in tags {
        args.extend(["--tag", t]);
    }
    ws.backup(&args)["id"].as_str().unwrap().to_string()
}

fn ids(ws: &Workspace) -> Vec<String> {
    let mut v: Vec<String> = ws
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn forget_applies_the_config_policy_and_the_dry_run_shows_why() {
    let (ws, cfg) = setup("{ daily = 2, keep_tags = [\"release\"] }");
    let c = cfg.to_str().unwrap();
    let d1 = backup_at(&ws, &cfg, "2026-01-01T02:00:00Z", &["protected"]);
    let d2 = backup_at(&ws, &cfg, "2026-01-02T02:00:00Z", &["release"]);
    let d3 = backup_at(&ws, &cfg, "2026-01-03T02:00:00Z", &[]);
    let d4a = backup_at(&ws, &cfg, "2026-01-04T01:00:00Z", &[]);
    let d4b = backup_at(&ws, &cfg, "2026-01-04T23:00:00Z", &[]);
    let d5 = backup_at(&ws, &cfg, "2026-01-05T00:00:00Z", &[]);
    let before = ids(&ws);

    let r = ws.run(&["--config", c, "forget", "--dry-run"]);
    r.ok();
    let line = |id: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(&id[..8]))
            .unwrap_or_else(|| panic!("{id} not in:\n{}", r.stdout))
            .to_string()
    };
    assert!(
        r.stdout.contains("docs (files): daily=2 tag=release"),
        "{}",
        r.stdout
    );
    assert!(line(&d5).trim_start().starts_with("keep"), "{}", r.stdout);
    assert!(line(&d5).ends_with("daily 1/2"), "{}", r.stdout);
    assert!(line(&d4b).ends_with("daily 2/2"), "{}", r.stdout);
    assert!(
        line(&d4a).trim_start().starts_with("remove"),
        "{}",
        r.stdout
    );
    assert!(line(&d3).trim_start().starts_with("remove"), "{}", r.stdout);
    assert!(line(&d2).ends_with("tag release"), "{}", r.stdout);
    assert!(line(&d1).ends_with("protected"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("would remove 2 snapshot(s), kept 4 (dry run"),
        "{}",
        r.stdout
    );
    assert_eq!(ids(&ws), before, "a dry run deletes nothing");

    let j = ws.run(&["--json", "--config", c, "forget", "--dry-run"]);
    j.ok();
    let v = j.json();
    assert_eq!(
        (v["kept"].as_u64(), v["removed"].as_u64()),
        (Some(4), Some(2))
    );
    let rows = v["groups"][0]["snapshots"].as_array().unwrap();
    assert_eq!(rows[0]["id"], d5.as_str());
    assert_eq!(rows[0]["reasons"][0], "daily 1/2");

    let r = ws.run(&["--config", c, "forget"]);
    r.ok();
    assert!(
        r.stdout.contains("removed 2 snapshot(s), kept 4"),
        "{}",
        r.stdout
    );
    let mut want = vec![d1, d2, d4b, d5.clone()];
    want.sort();
    assert_eq!(ids(&ws), want);

    // The kept snapshots still restore, content compared.
    ws.run(&["restore", &d5, "--to", ws.path("out").to_str().unwrap()])
        .ok();
    assert_eq!(
        fs::read(ws.path("out/data/a.txt")).unwrap(),
        b"2026-01-05T00:00:00Z"
    );
    // Applying the same policy again removes nothing.
    let again = ws.run(&["--config", c, "forget"]);
    again.ok();
    assert!(
        again.stdout.contains("removed 0 snapshot(s), kept 4"),
        "{}",
        again.stdout
    );
}

#[test]
fn forget_flags_replace_the_config_policy_and_select_a_source() {
    let (ws, cfg) = setup("{ daily = 7 }");
    let c = cfg.to_str().unwrap();
    backup_at(&ws, &cfg, "2026-01-01T02:00:00Z", &[]);
    let keep = backup_at(&ws, &cfg, "2026-01-02T02:00:00Z", &[]);
    write_file(&ws.path("other/b.txt"), b"beta\n", 0o644, T0);
    let other = ws.backup(&[
        "other",
        "--source-name",
        "misc",
        "--time",
        "2020-01-01T00:00:00Z",
    ]);
    let r = ws.run(&[
        "--config",
        c,
        "forget",
        "--source",
        "docs",
        "--keep-last",
        "1",
    ]);
    r.ok();
    assert!(r.stdout.contains("docs (files): last=1"), "{}", r.stdout);
    let mut want = vec![keep, other["id"].as_str().unwrap().to_string()];
    want.sort();
    assert_eq!(ids(&ws), want, "the other source is untouched");
}

#[test]
fn forget_without_a_policy_or_with_a_bad_one_fails_naming_the_fix() {
    let ws = Workspace::init();
    write_file(&ws.path("data/a.txt"), b"alpha\n", 0o644, T0);
    ws.backup(&["data"]);
    ws.run(&["forget"])
        .error(15, &["no retention policy", "--keep-", "retention = {"]);
    ws.run(&["forget", "--keep-within", "soon"])
        .error(15, &["within = \"soon\" is not a duration", "30d"]);
    assert_eq!(ids(&ws).len(), 1);
}

#[test]
fn backup_with_forget_applies_the_sources_retention_after_saving() {
    let (ws, cfg) = setup("{ last = 2 }");
    let c = cfg.to_str().unwrap();
    backup_at(&ws, &cfg, "2026-01-01T02:00:00Z", &[]);
    let b = backup_at(&ws, &cfg, "2026-01-02T02:00:00Z", &[]);
    write_file(&ws.path("data/a.txt"), b"third\n", 0o644, T0);
    let v = ws.backup(&[
        "--config",
        c,
        "docs",
        "--time",
        "2026-01-03T02:00:00Z",
        "--forget",
    ]);
    assert_eq!(v["forget"]["removed"], 1, "{v}");
    assert_eq!(v["forget"]["prune"]["dry_run"], false, "prune ran: {v}");
    assert!(
        v["forget"]["prune"]["unreferenced_packs"].as_u64().unwrap() >= 1,
        "{v}"
    );
    let mut want = vec![b, v["id"].as_str().unwrap().to_string()];
    want.sort();
    assert_eq!(ids(&ws), want);

    // The config switch does the same without the flag; text output shows the plan.
    let text = fs::read_to_string(&cfg).unwrap() + "forget_after_backup = true\n";
    fs::write(&cfg, text).unwrap();
    write_file(&ws.path("data/a.txt"), b"fourth\n", 0o644, T0);
    let r = ws.run(&[
        "--config",
        c,
        "backup",
        "docs",
        "--time",
        "2026-01-04T02:00:00Z",
    ]);
    r.ok();
    assert!(
        r.stdout.contains("snapshot ") && r.stdout.contains("removed 1 snapshot(s), kept 2"),
        "{}",
        r.stdout
    );
    assert_eq!(ids(&ws).len(), 2);
}

#[test]
fn backup_forget_without_a_policy_saves_the_snapshot_and_fails_naming_the_fix() {
    let ws = Workspace::init();
    write_file(&ws.path("data/a.txt"), b"alpha\n", 0o644, T0);
    ws.run(&["backup", "data", "--forget"]).code(15);
    assert_eq!(ids(&ws).len(), 1, "the backup itself is saved");
}
