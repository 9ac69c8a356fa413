//! `snapshots` and `ls`.

use super::Context;
use crate::args::{LsArgs, SnapshotsArgs};
use crate::output::size;
use anyhow::Result;
use lifeboat_engine::postgres::{verifications_checked, VerificationRecord};
use lifeboat_repo::{Id, Node, NodeKind, Repository, Tree};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn list(ctx: &Context, a: SnapshotsArgs) -> Result<ExitCode> {
    let repo = ctx.repo.open_without_index().await?;
    let (all, damaged) = repo.snapshots_checked().await?;
    for (id, e) in &damaged {
        match e {
            lifeboat_repo::Error::Unsupported(_) => {
                eprintln!("warning: snapshot {} is unsupported: {e}", id.short())
            }
            _ => eprintln!(
                "warning: snapshot {} cannot be read: {e} (run `lifeboat verify`)",
                id.short()
            ),
        }
    }
    let snaps: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| a.source.as_ref().is_none_or(|src| &s.source == src))
        .collect();
    // The latest restore test of each snapshot (records are oldest first).
    let mut tested: HashMap<Id, VerificationRecord> = HashMap::new();
    let (records, unreadable) = verifications_checked(&repo).await?;
    for (id, e) in &unreadable {
        eprintln!(
            "warning: restore-test record verifications/{id} cannot be read: {e} (run `lifeboat verify`)"
        );
    }
    for v in records {
        tested.insert(v.report.snapshot, v);
    }
    if ctx.global.json {
        // One whole snapshot (with its meta) in memory at a time.
        crate::outln!("[");
        for (i, (id, _)) in snaps.iter().enumerate() {
            let mut v = serde_json::to_value(repo.load_snapshot(id).await?).expect("json");
            v["id"] = serde_json::json!(id);
            v["restore_test"] = serde_json::to_value(tested.get(id)).expect("json");
            crate::outln!("{}{v}", if i == 0 { "" } else { "," });
        }
        crate::outln!("]");
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "{:<10} {:<20} {:<12} {:<18} {:>10} {:>10}  {:<13} paths",
        "id",
        "time",
        "source",
        "kind",
        "size",
        "added",
        "restore test"
    );
    for (id, s) in &snaps {
        let test = match tested.get(id) {
            Some(v) if v.report.ok => format!("ok {:.1}s", v.report.restore_ms as f64 / 1000.0),
            Some(_) => "FAILED".to_string(),
            None => "-".to_string(),
        };
        crate::outln!(
            "{:<10} {:<20} {:<12} {:<18} {:>10} {:>10}  {:<13} {}",
            id.short(),
            short_time(&s.time),
            s.source,
            s.kind,
            size(s.stats.bytes),
            size(s.stats.stored_bytes),
            test,
            s.paths.join(" ")
        );
    }
    for (id, e) in &damaged {
        if let lifeboat_repo::Error::Unsupported(_) = e {
            crate::outln!(
                "{:<10} unsupported: written by a newer lifeboat, upgrade lifeboat to read it",
                id.short()
            );
        }
    }
    crate::outln!("{} snapshot(s)", snaps.len());
    Ok(ExitCode::SUCCESS)
}

pub async fn ls(ctx: &Context, a: LsArgs) -> Result<ExitCode> {
    let repo = ctx.repo.open().await?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, a.source.as_deref()).await?;
    let mut tree = repo.load_tree(&snap.tree).await?;
    let mut prefix = String::new();
    if let Some(p) = &a.path {
        for part in p.split('/').filter(|s| !s.is_empty()) {
            let node = tree.get(part.as_bytes()).cloned().ok_or_else(|| {
                lifeboat_repo::Error::NotFound(format!(
                    "path {p:?} is not in snapshot {} (see `lifeboat ls {}`)",
                    id.short(),
                    id.short()
                ))
            })?;
            prefix = format!("{prefix}/{part}");
            match node.subtree {
                Some(sub) => tree = repo.load_tree(&sub).await?,
                None => {
                    tree = Tree {
                        nodes: vec![node],
                        next: None,
                    };
                    prefix = prefix
                        .rsplit_once('/')
                        .map(|(a, _)| a.to_string())
                        .unwrap_or_default();
                    break;
                }
            }
        }
    }
    let json = ctx.global.json;
    if json {
        crate::outln!("[");
    }
    let mut first = true;
    walk(&repo, tree, prefix, |n, path| {
        if json {
            let row = serde_json::json!({
                "path": path, "type": n.kind, "mode": n.mode, "size": n.size, "mtime_ns": n.mtime_ns,
                "uid": n.uid, "gid": n.gid, "target": n.target,
            });
            crate::outln!("{}{row}", if first { "" } else { "," });
            first = false;
        } else {
            let c = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
            };
            crate::outln!("{c}{:04o} {:>10}  {path}", n.mode, size(n.size));
        }
    })
    .await?;
    if json {
        crate::outln!("]");
    }
    Ok(ExitCode::SUCCESS)
}

/// Call `row` for every entry below `tree`, in tree order (a directory,
/// then its entries by name), streaming: one tree per level in memory.
async fn walk(
    repo: &Arc<Repository>,
    tree: Tree,
    prefix: String,
    mut row: impl FnMut(&Node, &str),
) -> Result<()> {
    let mut stack = vec![(tree.nodes.into_iter(), prefix)];
    while let Some((nodes, prefix)) = stack.last_mut() {
        let Some(n) = nodes.next() else {
            stack.pop();
            continue;
        };
        let path = format!("{prefix}/{}", n.name);
        row(&n, &path);
        if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
            let sub = repo.load_tree(&sub).await?;
            stack.push((sub.nodes.into_iter(), path));
        }
    }
    Ok(())
}

/// `2026-01-31T02:00:00Z` (seconds) for tables; the full time is in `--json`.
fn short_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| t.to_string())
}
