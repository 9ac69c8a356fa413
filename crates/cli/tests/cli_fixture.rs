//! The frozen format-v1 fixture (docs/FORMAT.md §17): every build must open,
//! list, verify (`--read-data`) and restore byte for byte the repository in
//! `tests/fixtures/repo-v1/`, written once by `make-repo-v1.sh` with the
//! release that froze format v1. Never regenerate the fixture to make this
//! test pass: a failure means the format changed incompatibly.
//!
//! The test works on a copy, so nothing a command might write (a lock, a
//! cleanup) can alter the fixture.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/repo-v1");

/// What `manifest.txt` records.
struct Manifest {
    files_snapshot: String,
    pg_snapshot: String,
    dump: String,
    entries: BTreeSet<String>,
}

fn manifest() -> Manifest {
    let text = fs::read_to_string(Path::new(FIXTURE).join("manifest.txt")).unwrap();
    let mut m = Manifest {
        files_snapshot: String::new(),
        pg_snapshot: String::new(),
        dump: String::new(),
        entries: BTreeSet::new(),
    };
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("snapshot", rest)) if rest.starts_with("files ") => {
                m.files_snapshot = rest["files ".len()..].to_string()
            }
            Some(("snapshot", rest)) => {
                m.pg_snapshot = rest["postgres-logical ".len()..].to_string()
            }
            Some(("dump", rest)) => m.dump = rest.to_string(),
            _ => {
                m.entries.insert(line.to_string());
            }
        }
    }
    assert_eq!(m.files_snapshot.len(), 64);
    assert_eq!(m.pg_snapshot.len(), 64);
    m
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The manifest lines of the restored tree below `root` (same format as
/// the generator's `stat`/`sha256sum` lines).
fn describe(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![PathBuf::from("app")];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).unwrap();
        let name = rel.display();
        let mode = md.permissions().mode() & 0o7777;
        if md.file_type().is_symlink() {
            out.insert(format!(
                "symlink - - - - {name} -> {}",
                fs::read_link(&p).unwrap().display()
            ));
        } else if md.is_dir() {
            out.insert(format!("dir {mode:o} {} - - {name}", md.mtime()));
            for e in fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        } else {
            out.insert(format!(
                "file {mode:o} {} {} {} {name}",
                md.mtime(),
                md.len(),
                sha256(&p)
            ));
        }
    }
    out
}

/// A workspace whose repository is a copy of the fixture.
fn fixture_workspace() -> Workspace {
    let ws = Workspace::new();
    copy_tree(&Path::new(FIXTURE).join("repo"), &ws.repo);
    fs::copy(Path::new(FIXTURE).join("password"), &ws.pass).unwrap();
    ws
}

#[test]
fn frozen_v1_fixture_opens_lists_verifies_and_restores_byte_identically() {
    let m = manifest();
    let ws = fixture_workspace();

    let snaps = ws.snapshots();
    let ids: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [m.files_snapshot.as_str(), m.pg_snapshot.as_str()]);
    assert_eq!(snaps[0]["kind"], "files");
    assert_eq!(snaps[0]["tags"], serde_json::json!(["fixture"]));
    assert_eq!(snaps[1]["kind"], "postgres-logical");
    assert_eq!(snaps[1]["meta"]["database"], "shop");

    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["report"]["snapshots"], 2);
    assert!(
        report["report"]["packs_read"].as_u64().unwrap() >= 2,
        "{report}"
    );

    let ls = ws.run(&["--json", "ls", &m.files_snapshot[..8]]);
    ls.ok();
    let listed: BTreeSet<String> = ls
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = m
        .entries
        .iter()
        .map(|l| {
            let path = l.split(' ').nth(5).unwrap();
            format!("/{path}")
        })
        .collect();
    assert_eq!(listed, expected);

    let to = ws.path("restored");
    ws.run(&["restore", &m.files_snapshot, "--to", to.to_str().unwrap()])
        .ok();
    assert_eq!(describe(&to), m.entries);

    let dump = ws.path("shop.dump");
    ws.run(&[
        "dump",
        "export",
        &m.pg_snapshot[..8],
        "--format",
        "custom",
        "-o",
        dump.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        format!("{} {}", sha256(&dump), fs::metadata(&dump).unwrap().len()),
        m.dump
    );
    let pg_ls = ws.run(&["--json", "ls", &m.pg_snapshot[..8]]);
    pg_ls.ok();
    assert!(pg_ls.stdout.contains("database.dump"), "{}", pg_ls.stdout);
}

#[test]
fn frozen_v1_fixture_holds_a_multi_chunk_file_and_reads_through_the_library() {
    use lifeboat_repo::{Credentials, Repository};
    let m = manifest();
    let ws = fixture_workspace();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let storage = std::sync::Arc::new(lifeboat_storage::local::LocalStorage::new(&ws.repo));
        let pw = fs::read_to_string(&ws.pass).unwrap();
        let repo = Repository::open(
            storage,
            Credentials::Password(pw.trim_end().as_bytes().to_vec().into()),
        )
        .await
        .unwrap();
        repo.load_index().await.unwrap();
        let (_, snap) = repo.find_snapshot(&m.files_snapshot, None).await.unwrap();
        let root = repo.load_tree(&snap.tree).await.unwrap();
        let app = root.nodes.iter().find(|n| n.name == "app").unwrap();
        let app = repo.load_tree(&app.subtree.unwrap()).await.unwrap();
        let big = app.nodes.iter().find(|n| n.name == "big.log").unwrap();
        assert!(
            big.content.len() >= 2,
            "big.log has {} chunk(s)",
            big.content.len()
        );
        let empty = app.nodes.iter().find(|n| n.name == "empty").unwrap();
        assert!(empty.content.is_empty() && empty.size == 0);
    });
}

/// SHA-256 of the fixture's listing (`<sha256> <path>` per file, sorted by
/// path), pinned when format v1 was frozen. The fixture is only a guard if
/// it is never regenerated: a regenerated fixture is written by the code
/// under test and would pass whatever that code does to the format.
const FIXTURE_LISTING_SHA256: &str =
    "c274821aca05e47eb6a4f8b51b9c3d66e30fba9eb9a03d0e97e8ebc83fd956e9";

#[test]
fn frozen_v1_fixture_bytes_are_never_regenerated() {
    let root = Path::new(FIXTURE);
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                files.push(r.to_str().unwrap().to_string());
            }
        }
    }
    files.sort();
    let listing: String = files
        .iter()
        .map(|f| format!("{} {f}\n", sha256(&root.join(f))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("listing");
    fs::write(&at, &listing).unwrap();
    assert_eq!(
        sha256(&at),
        FIXTURE_LISTING_SHA256,
        "the frozen fixture under {FIXTURE} changed; it must never be regenerated or edited (docs/FORMAT.md §17). Listing now:\n{listing}"
    );
}
