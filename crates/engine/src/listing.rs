//! Listing use cases: the snapshots (with their latest restore test) and the
//! contents of one snapshot, streamed.

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::restore_files::find_node;
use lifeboat_repo::{Id, NodeKind, Repository, Snapshot, SnapshotInfo, Tree, VerificationRecord};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A snapshot in a listing.
#[derive(Debug, Clone)]
pub struct ListedSnapshot {
    /// Its id.
    pub id: Id,
    /// The snapshot without its `meta`.
    pub info: SnapshotInfo,
    /// Its latest restore test, if any.
    pub restore_test: Option<VerificationRecord>,
}

/// An object that could not be read, and why.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Its id.
    pub id: Id,
    /// Written by a newer lifeboat (not damaged).
    pub unsupported: bool,
    /// The reason.
    pub message: String,
}

/// The snapshots of a repository, oldest first.
pub struct SnapshotListing {
    /// Readable snapshots (of the requested source).
    pub snapshots: Vec<ListedSnapshot>,
    /// Snapshots that cannot be read.
    pub unreadable: Vec<Unreadable>,
    /// Verification records that cannot be read.
    pub unreadable_records: Vec<Unreadable>,
    repo: Arc<Repository>,
}

impl SnapshotListing {
    /// The whole snapshot (with `meta`) of a listed id, one at a time.
    pub async fn load(&self, id: &Id) -> Result<Snapshot> {
        Ok(self.repo.load_snapshot(id).await?)
    }
}

fn unreadable(id: Id, e: &lifeboat_repo::Error) -> Unreadable {
    Unreadable {
        id,
        unsupported: matches!(e, lifeboat_repo::Error::Unsupported(_)),
        message: e.to_string(),
    }
}

/// List snapshots (only `source`'s when given), each with its latest restore test.
pub async fn snapshots(ctx: &Ctx, source: Option<&str>) -> Result<SnapshotListing> {
    let repo = ctx.repo.open_without_index().await?;
    let (all, damaged) = repo.snapshots_checked().await?;
    let (records, bad_records) = lifeboat_repo::verification::verifications_checked(&repo).await?;
    // Records are oldest first: the last one of a snapshot wins.
    let mut tested: HashMap<Id, VerificationRecord> = HashMap::new();
    for v in records {
        tested.insert(v.report.snapshot, v);
    }
    let snapshots = all
        .into_iter()
        .filter(|(_, s)| source.is_none_or(|src| s.source == src))
        .map(|(id, info)| ListedSnapshot {
            id,
            info,
            restore_test: tested.remove(&id),
        })
        .collect();
    Ok(SnapshotListing {
        snapshots,
        unreadable: damaged.iter().map(|(id, e)| unreadable(*id, e)).collect(),
        unreadable_records: bad_records
            .iter()
            .map(|(id, e)| unreadable(*id, e))
            .collect(),
        repo,
    })
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct LsRequest {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Only below this path inside the snapshot (a file: just that file).
    pub path: Option<String>,
    /// With `latest`: the latest of this source.
    pub source: Option<String>,
}

/// One entry of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct LsEntry {
    /// `/`-separated path from the snapshot root.
    pub path: String,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Content size.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Symlink target.
    pub target: Option<String>,
}

/// Call `row` for every entry of a snapshot (or below `path`), in tree order:
/// a directory, then its entries by name; one tree per level in memory.
pub async fn ls(ctx: &Ctx, req: LsRequest, mut row: impl FnMut(&LsEntry)) -> Result<()> {
    let repo = ctx.repo.open().await?;
    let (id, snap) = repo
        .find_snapshot(&req.snapshot, req.source.as_deref())
        .await?;
    let root = repo.load_tree(&snap.tree).await?;
    let (tree, prefix) = match req.path.as_deref() {
        None => (root, String::new()),
        Some(p) => start_at(&repo, root, p, &id).await?,
    };
    let mut stack = vec![(tree.nodes.into_iter(), prefix)];
    while let Some((nodes, prefix)) = stack.last_mut() {
        let Some(n) = nodes.next() else {
            stack.pop();
            continue;
        };
        let path = format!("{prefix}/{}", n.name);
        row(&LsEntry {
            path: path.clone(),
            kind: n.kind,
            mode: n.mode,
            size: n.size,
            mtime_ns: n.mtime_ns,
            uid: n.uid,
            gid: n.gid,
            target: n.target.clone(),
        });
        if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
            let sub = repo.load_tree(&sub).await?;
            stack.push((sub.nodes.into_iter(), path));
        }
    }
    Ok(())
}

/// The tree to list for `path` and the prefix of its entries: a directory's
/// own tree, or a tree of just the file.
async fn start_at(repo: &Repository, root: Tree, path: &str, id: &Id) -> Result<(Tree, String)> {
    let node = find_node(repo, root, path).await.map_err(|e| match e {
        EngineError::Repo(lifeboat_repo::Error::NotFound(_)) => {
            EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
                "path {path:?} is not in snapshot {} (see `lifeboat ls {}`)",
                id.short(),
                id.short()
            )))
        }
        other => other,
    })?;
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let dir = format!("/{}", parts.join("/"));
    match node.subtree {
        Some(sub) => Ok((repo.load_tree(&sub).await?, dir)),
        None => {
            let parent = dir.rsplit_once('/').map(|(a, _)| a.to_string());
            let tree = Tree {
                nodes: vec![node],
                next: None,
            };
            Ok((tree, parent.unwrap_or_default()))
        }
    }
}
