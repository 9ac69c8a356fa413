//! End-to-end tests of format evolution: config feature flags and its MAC
//! over the stored payload, unknown versions and kinds ("upgrade lifeboat",
//! exit 13, never "damaged"), and objects bound to their type by sealing.
//!
//! Each test crafts what a newer lifeboat would write (re-MAC'd or
//! re-sealed with the repository's real keys, taken from `key export`) and
//! runs the real binary on it.

mod common;

use common::*;
use lifeboat_repo::crypto::{ad, Keys, MasterKey};
use lifeboat_repo::id::{from_hex, Id};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// An mtime in the past, so restored mtimes cannot come from "now".
const T0: u64 = 1_614_830_400;

/// A repository with one files snapshot of a small tree; returns the
/// workspace, the backed-up directory and the snapshot id.
fn with_snapshot() -> (Workspace, PathBuf, String) {
    let ws = Workspace::init();
    let src = ws.path("src/app");
    write_file(&src.join("a.txt"), b"alpha\n", 0o644, T0);
    write_file(&src.join("sub/b.bin"), &pseudo_random(70_000, 3), 0o600, T0);
    let id = ws.backup(&[src.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    (ws, src, id)
}

/// The repository's working keys (from an exported raw key file).
fn repo_keys(ws: &Workspace) -> Keys {
    let out = ws.path("raw.key");
    let _ = fs::remove_file(&out);
    ws.run(&["key", "export", "-o", out.to_str().unwrap()]).ok();
    let raw: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let bytes: [u8; 32] = from_hex(raw["master_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    Keys::derive(&MasterKey::from_bytes(bytes))
}

/// Rewrite the config payload with `edit`; re-MAC it when `keys` is given.
fn edit_config(ws: &Workspace, keys: Option<&Keys>, edit: impl FnOnce(&mut Value)) {
    let path = ws.repo.join("config");
    let envelope: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_str(envelope["payload"].as_str().unwrap()).unwrap();
    edit(&mut payload);
    let text = serde_json::to_string(&payload).unwrap();
    let bytes = match keys {
        Some(k) => lifeboat_repo::config::encode_payload(text, k),
        None => serde_json::to_vec(&json!({"payload": text, "mac": envelope["mac"]})).unwrap(),
    };
    fs::write(&path, bytes).unwrap();
}

/// Restore `snap` into a fresh directory and compare it with `src`.
fn assert_restores(ws: &Workspace, snap: &str, src: &Path, name: &str) {
    let to = ws.path(name);
    ws.run(&["restore", snap, "--to", to.to_str().unwrap()])
        .ok();
    assert_same_tree(src, &to.join("app"));
}

#[test]
fn unknown_incompatible_feature_refuses_every_command_with_13() {
    let (ws, _, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    edit_config(&ws, Some(&keys), |p| {
        p["features"]["incompatible"] = json!(["zstd-dictionaries"]);
    });
    let src = ws.path("src");
    for args in [
        &["snapshots"][..],
        &["ls", &snap],
        &["verify"],
        &["restore", &snap, "--to", "out"],
        &["backup", src.to_str().unwrap()],
        &["key", "list"],
    ] {
        ws.run(args)
            .error(13, &["zstd-dictionaries", "upgrade lifeboat"]);
    }
    assert!(!ws.path("out").exists());
}

#[test]
fn unknown_ro_compatible_feature_reads_but_refuses_writes_with_13() {
    let (ws, src, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    let second = ws.password_file("second", "a second passphrase");
    ws.run(&[
        "key",
        "add",
        "--new-password-file",
        second.to_str().unwrap(),
    ])
    .ok();
    let key_ids: Vec<String> = fs::read_dir(ws.repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect();
    assert_eq!(key_ids.len(), 2);
    edit_config(&ws, Some(&keys), |p| {
        p["features"]["ro_compatible"] = json!(["wal-archive"]);
    });
    assert_eq!(ws.snapshots().len(), 1);
    ws.run(&["ls", &snap]).ok();
    assert_eq!(ws.verify(&["--read-data"]).0, 0);
    assert_restores(&ws, &snap, &src, "restored");
    let objects_before = files_below(&ws.repo);
    ws.run(&["backup", src.to_str().unwrap()])
        .error(13, &["wal-archive", "not write", "upgrade lifeboat"]);
    let new_pass = ws.password_file("new", "another passphrase");
    ws.run(&[
        "key",
        "add",
        "--new-password-file",
        new_pass.to_str().unwrap(),
    ])
    .error(13, &["wal-archive", "upgrade lifeboat"]);
    ws.run(&[
        "key",
        "passwd",
        "--new-password-file",
        new_pass.to_str().unwrap(),
    ])
    .error(13, &["wal-archive", "upgrade lifeboat"]);
    for id in &key_ids {
        ws.run(&["key", "remove", &id[..12]])
            .error(13, &["wal-archive", "upgrade lifeboat"]);
    }
    assert_eq!(files_below(&ws.repo), objects_before, "nothing was written");
}

#[test]
fn unknown_compatible_feature_and_extra_fields_open_read_write() {
    let (ws, src, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    // What a newer writer could store: fields this build does not know, in
    // its own order and spacing. The MAC covers these bytes as stored.
    let path = ws.repo.join("config");
    let envelope: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let payload = envelope["payload"].as_str().unwrap();
    let newer = format!(
        "{{ \"retention_hint\": {{\"keep_daily\": 7}},\n  {}",
        payload.trim_start_matches('{')
    )
    .replace("\"compatible\":[]", "\"compatible\":[\"faster-listing\"]");
    assert!(newer.contains("faster-listing"), "{newer}");
    fs::write(
        &path,
        lifeboat_repo::config::encode_payload(newer.clone(), &keys),
    )
    .unwrap();
    assert_restores(&ws, &snap, &src, "restored");
    write_file(&src.join("c.txt"), b"new file\n", 0o644, T0);
    let second = ws.backup(&[src.to_str().unwrap()]);
    assert_restores(&ws, second["id"].as_str().unwrap(), &src, "restored2");
    assert_eq!(ws.verify(&["--read-data"]).0, 0);
    // The config is never rewritten by a reader or writer.
    let after: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(after["payload"].as_str().unwrap(), newer);
}

#[test]
fn edited_config_without_a_new_mac_is_reported_as_altered() {
    let (ws, _, _) = with_snapshot();
    edit_config(&ws, None, |p| p["compression_level"] = json!(19));
    ws.run(&["snapshots"])
        .error(12, &["config", "MAC mismatch", "altered"]);
}

#[test]
fn unknown_format_version_in_the_payload_exits_13() {
    let (ws, _, _) = with_snapshot();
    edit_config(&ws, None, |p| p["version"] = json!(2));
    for args in [&["snapshots"][..], &["verify"], &["key", "list"]] {
        ws.run(args)
            .error(13, &["version 2", "not supported", "upgrade lifeboat"]);
    }
}

/// Open `dir/<id>`, edit its JSON, seal it again (as `dir`) under its new
/// name; the original stays. Returns the new id.
fn reseal_json(
    ws: &Workspace,
    keys: &Keys,
    dir: &str,
    id: &str,
    edit: impl FnOnce(&mut Value),
) -> String {
    let sealed = fs::read(ws.repo.join(dir).join(id)).unwrap();
    let plain = keys.open(&sealed, &ad::object(dir), "test").unwrap();
    let mut v: Value = serde_json::from_slice(&plain).unwrap();
    edit(&mut v);
    let resealed = keys.seal(&ad::object(dir), &serde_json::to_vec(&v).unwrap());
    let new_id = Id::of_file(&resealed).to_string();
    fs::write(ws.repo.join(dir).join(&new_id), resealed).unwrap();
    new_id
}

fn assert_unknown_snapshot_is_unsupported(field: &str, value: Value, needle: &str) {
    let (ws, src, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    let newer = reseal_json(&ws, &keys, "snapshots", &snap, |v| {
        v[field] = value;
        v["time"] = json!("2030-01-01T00:00:00Z");
    });
    // The listing shows the known snapshot and names the other one.
    let r = ws.run(&["snapshots"]);
    r.ok();
    assert!(r.stdout.contains(&snap[..8]), "{}", r.stdout);
    let row = r.stdout.lines().find(|l| l.starts_with(&newer[..8]));
    assert!(
        row.is_some_and(|l| l.contains("unsupported") && l.contains("upgrade lifeboat")),
        "{}",
        r.stdout
    );
    assert_eq!(ws.snapshots().len(), 1);
    for args in [
        &["ls", &newer[..12]][..],
        &["restore", &newer[..12], "--to", "out"],
    ] {
        ws.run(args).error(13, &[needle, "upgrade lifeboat"]);
    }
    assert!(!ws.path("out").exists());
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 13, "{report}");
    assert_eq!(report["report"]["problems"], json!([]), "{report}");
    assert_eq!(report["report"]["damaged_snapshots"], json!([]), "{report}");
    let unsupported = report["report"]["unsupported"].to_string();
    assert!(
        unsupported.contains(&format!("snapshots/{newer}")),
        "{unsupported}"
    );
    // The known snapshot still restores.
    assert_restores(&ws, &snap, &src, "restored");
}

#[test]
fn snapshot_of_an_unknown_version_is_upgrade_lifeboat_never_damaged() {
    assert_unknown_snapshot_is_unsupported("version", json!(2), "snapshot version 2");
}

#[test]
fn snapshot_of_an_unknown_kind_is_upgrade_lifeboat_never_damaged() {
    assert_unknown_snapshot_is_unsupported(
        "kind",
        json!("clickhouse-parts"),
        "snapshot kind \"clickhouse-parts\"",
    );
}

#[test]
fn key_file_of_an_unknown_version_is_upgrade_lifeboat_not_wrong_password() {
    let (ws, _, _) = with_snapshot();
    let (name, path) = only_object(&ws.repo, "keys");
    let mut kf: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    kf["version"] = json!(2);
    fs::write(&path, serde_json::to_vec(&kf).unwrap()).unwrap();
    ws.run(&["snapshots"])
        .error(13, &[&name, "version 2", "upgrade lifeboat"]);
}

#[test]
fn raw_key_file_of_an_unknown_version_is_upgrade_lifeboat() {
    let (ws, _, _) = with_snapshot();
    let out = ws.path("raw.key");
    ws.run(&["key", "export", "-o", out.to_str().unwrap()]).ok();
    let mut raw: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    raw["version"] = json!(2);
    fs::write(&out, serde_json::to_vec(&raw).unwrap()).unwrap();
    ws.run_with(&["snapshots"], |c| {
        c.env_remove("LIFEBOAT_PASSWORD_FILE")
            .env("LIFEBOAT_KEY_FILE", &out);
    })
    .error(13, &["raw key file", "version 2", "upgrade lifeboat"]);
}

#[test]
fn index_file_of_an_unknown_version_is_upgrade_lifeboat_never_damaged() {
    let (ws, _, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    let (name, path) = only_object(&ws.repo, "index");
    let mut plain = keys
        .open(&fs::read(&path).unwrap(), ad::INDEX, "test")
        .unwrap();
    assert_eq!(&plain[..5], b"LBIX\x01");
    plain[4] = 2;
    let sealed = keys.seal(ad::INDEX, &plain);
    let newer = Id::of_file(&sealed).to_string();
    fs::write(ws.repo.join("index").join(&newer), sealed).unwrap();
    ws.run(&["restore", &snap, "--to", "out"])
        .error(13, &[&newer, "index file version 2", "upgrade lifeboat"]);
    let (code, report) = ws.verify(&[]);
    assert_eq!(code, 13, "{report}");
    assert_eq!(report["report"]["problems"], json!([]), "{report}");
    assert!(report["report"]["unsupported"].to_string().contains(&newer));
    assert!(!report["report"]["unsupported"].to_string().contains(&name));
}

#[test]
fn object_copied_into_another_types_place_is_damaged_naming_it() {
    let (ws, _, snap) = with_snapshot();
    let keys = repo_keys(&ws);
    // A snapshot's plaintext sealed as a verification record (the same
    // bytes a sealed snapshot holds, in the other type's directory) and an
    // index file copied into snapshots/: names match their content (the
    // name is the hash of the bytes), only the sealing binds the type.
    let plain = keys
        .open(
            &fs::read(ws.repo.join("snapshots").join(&snap)).unwrap(),
            &ad::object("snapshots"),
            "test",
        )
        .unwrap();
    let as_blob = keys.seal(&ad::blob(&keys.blob_id(&plain)), &plain);
    let planted = Id::of_file(&as_blob).to_string();
    fs::write(ws.repo.join("snapshots").join(&planted), &as_blob).unwrap();
    let (_, index) = only_object(&ws.repo, "index");
    let index_bytes = fs::read(index).unwrap();
    let planted_index = Id::of_file(&index_bytes).to_string();
    fs::write(ws.repo.join("snapshots").join(&planted_index), &index_bytes).unwrap();

    assert_eq!(ws.snapshots().len(), 1, "only the real snapshot is listed");
    for id in [&planted, &planted_index] {
        ws.run(&["ls", &id[..12]])
            .error(12, &[&format!("snapshots/{id}"), "authentication failed"]);
    }
    let (code, report) = ws.verify(&[]);
    assert_eq!(code, 12, "{report}");
    let problems = report["report"]["problems"].to_string();
    assert!(
        problems.contains(&format!("snapshots/{planted}")),
        "{problems}"
    );
    assert!(
        problems.contains(&format!("snapshots/{planted_index}")),
        "{problems}"
    );
}
