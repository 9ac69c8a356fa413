//! Restore of files from a snapshot: plan, then execute.
//!
//! [`plan`] walks the snapshot's trees (or the chosen sub-paths), counts
//! what it will create under the target and lists the entries that already
//! exist as conflicts. [`execute`] refuses conflicts unless forced, then
//! walks the trees again: it creates each directory as it comes to it,
//! hands files to parallel writers through a bounded queue, then makes
//! symlinks, and finally applies directory metadata deepest first (so
//! writing children does not disturb their parent's mtime). Both walks are
//! depth first and hold one directory per level, never the whole snapshot:
//! memory grows with the number of directories, not files.

use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{ContentReader, Node, NodeKind, Repository, Snapshot};
use lifeboat_sources::files::{self, EntryKind, RestoreMeta};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a restore will do.
#[derive(Debug, Default)]
pub struct RestorePlan {
    /// Target directory.
    pub target: PathBuf,
    /// The entries restored at the top (relative path, node); everything
    /// below them is read from their trees as the restore goes.
    starts: Vec<(PathBuf, Node)>,
    /// Existing paths the restore would overwrite.
    pub conflicts: Vec<PathBuf>,
    summary: RestoreSummary,
}

/// Figures of a plan or a finished restore.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreSummary {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

impl RestorePlan {
    /// Counts of what the plan creates.
    pub fn summary(&self) -> RestoreSummary {
        self.summary.clone()
    }

    /// Call `f` with every entry to create (path relative to the target),
    /// in pre-order (parents before children).
    pub async fn for_each(&self, repo: &Repository, mut f: impl FnMut(&Path, &Node)) -> Result<()> {
        let mut walk = PreOrder::new(&self.starts);
        while let Some((rel, node)) = walk.pop() {
            f(&rel, &node);
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                walk.push_children(&rel, repo.load_tree(&sub).await?)?;
            }
        }
        Ok(())
    }
}

/// A depth-first walk of trees in pre-order; the caller loads each
/// directory's tree and pushes its children (so the walk can be async or
/// blocking). Holds the pending siblings along one path only.
struct PreOrder {
    stack: Vec<(PathBuf, Node)>,
}

impl PreOrder {
    fn new(starts: &[(PathBuf, Node)]) -> Self {
        PreOrder {
            stack: starts.iter().rev().cloned().collect(),
        }
    }

    fn pop(&mut self) -> Option<(PathBuf, Node)> {
        self.stack.pop()
    }

    fn push_children(&mut self, rel: &Path, tree: lifeboat_repo::Tree) -> Result<()> {
        for child in tree.nodes.into_iter().rev() {
            self.stack.push((rel.join(entry_name(&child)?), child));
        }
        Ok(())
    }
}

/// Plan restoring `snap` (or `subpaths` inside it) into `target`.
pub async fn plan(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    target: &Path,
    subpaths: &[String],
) -> Result<RestorePlan> {
    let root = repo.load_tree(&snap.tree).await?;
    let mut starts: Vec<(PathBuf, Node)> = Vec::new();
    if subpaths.is_empty() {
        for n in root.nodes {
            starts.push((PathBuf::from(entry_name(&n)?), n));
        }
    } else {
        for sub in subpaths {
            let node = find_node(repo, root.clone(), sub).await?;
            starts.push((PathBuf::from(entry_name(&node)?), node));
        }
    }
    let mut plan = RestorePlan {
        target: target.to_path_buf(),
        starts,
        ..Default::default()
    };
    let (mut conflicts, mut summary) = (Vec::new(), RestoreSummary::default());
    plan.for_each(repo, |rel, node| {
        let abs = target.join(rel);
        let exists = std::fs::symlink_metadata(&abs).is_ok();
        if exists && !(node.kind == NodeKind::Dir && abs.is_dir() && !abs.is_symlink()) {
            conflicts.push(abs);
        }
        match node.kind {
            NodeKind::File => {
                summary.files += 1;
                summary.bytes += node.size;
            }
            NodeKind::Dir => summary.dirs += 1,
            NodeKind::Symlink => summary.symlinks += 1,
        }
    })
    .await?;
    plan.conflicts = conflicts;
    plan.summary = summary;
    Ok(plan)
}

/// A node's name as one path component. Names that could leave the target
/// (empty, `.`, `..`, containing `/` or NUL) can only come from a damaged or
/// crafted repository and are refused.
fn entry_name(node: &Node) -> Result<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let b = node.name_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "tree entry name {:?} is not a single path component; refusing to restore it",
            node.name
        ))));
    }
    Ok(std::ffi::OsString::from_vec(b))
}

async fn find_node(repo: &Repository, mut tree: lifeboat_repo::Tree, sub: &str) -> Result<Node> {
    let parts: Vec<&str> = sub.split('/').filter(|p| !p.is_empty()).collect();
    let not_found = || {
        EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
            "path {sub:?} is not in the snapshot (see `lifeboat ls`)"
        )))
    };
    for (i, part) in parts.iter().enumerate() {
        let node = tree.get(part.as_bytes()).cloned().ok_or_else(not_found)?;
        if i + 1 == parts.len() {
            return Ok(node);
        }
        let sub_id = node.subtree.ok_or_else(not_found)?;
        tree = repo.load_tree(&sub_id).await?;
    }
    Err(not_found())
}

/// Carry out a plan. Without `force`, any conflict aborts before anything is written.
pub async fn execute(
    repo: &Arc<Repository>,
    plan: RestorePlan,
    force: bool,
    progress: Arc<Progress>,
) -> Result<RestoreSummary> {
    if !force && !plan.conflicts.is_empty() {
        let first: Vec<String> = plan
            .conflicts
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        return Err(EngineError::TargetNotEmpty(format!(
            "restore would overwrite {} existing path(s), e.g. {}: choose an empty target or pass --force; nothing was written",
            plan.conflicts.len(),
            first.join(", ")
        )));
    }
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || execute_blocking(&repo, &plan, force, &progress))
        .await
        .expect("restore thread panicked")
}

fn meta_of(n: &Node) -> RestoreMeta {
    RestoreMeta {
        mode: n.mode,
        mtime_ns: n.mtime_ns,
        uid: n.uid,
        gid: n.gid,
    }
}

fn execute_blocking(
    repo: &Arc<Repository>,
    plan: &RestorePlan,
    force: bool,
    progress: &Progress,
) -> Result<RestoreSummary> {
    let chown = files::can_chown();
    let target = &plan.target;
    std::fs::create_dir_all(target)
        .map_err(EngineError::io(format!("creating {}", target.display())))?;
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    let (files_tx, files_rx) = std::sync::mpsc::sync_channel::<(PathBuf, Node)>(2 * threads);
    let files_rx = Mutex::new(files_rx);
    let walked = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let job = files_rx.lock().expect("files lock").recv();
                let Ok((rel, node)) = job else { return };
                if failure.lock().expect("failure lock").is_some() {
                    continue;
                }
                if let Err(e) = restore_file(repo, target, &rel, &node, force, chown, progress) {
                    failure.lock().expect("failure lock").get_or_insert(e);
                }
            });
        }
        let walked = create_dirs_and_queue_files(repo, plan, &files_tx, &failure);
        drop(files_tx);
        walked
    });
    if let Some(e) = failure.into_inner().expect("failure lock") {
        return Err(e);
    }
    let Walked { dirs, symlinks } = walked?;
    for (rel, node) in symlinks {
        let path = target.join(&rel);
        files::create_symlink(&node.target_bytes().unwrap_or_default(), &path, force)?;
        files::apply_meta(&path, EntryKind::Symlink, &meta_of(&node), chown)?;
    }
    for (rel, meta) in dirs.iter().rev() {
        files::apply_meta(&target.join(rel), EntryKind::Dir, meta, chown)?;
    }
    Ok(plan.summary())
}

/// What the restore walk leaves for after the files: directories (for
/// their metadata, in pre-order) and symlinks.
struct Walked {
    dirs: Vec<(PathBuf, RestoreMeta)>,
    symlinks: Vec<(PathBuf, Node)>,
}

/// Walk the plan's trees: create each directory, queue each file for the
/// writers; stops early when a writer failed.
fn create_dirs_and_queue_files(
    repo: &Repository,
    plan: &RestorePlan,
    files_tx: &std::sync::mpsc::SyncSender<(PathBuf, Node)>,
    failure: &Mutex<Option<EngineError>>,
) -> Result<Walked> {
    let mut out = Walked {
        dirs: Vec::new(),
        symlinks: Vec::new(),
    };
    let mut walk = PreOrder::new(&plan.starts);
    while let Some((rel, node)) = walk.pop() {
        if failure.lock().expect("failure lock").is_some() {
            break;
        }
        match node.kind {
            NodeKind::Dir => {
                files::create_dir(&plan.target.join(&rel))?;
                if let Some(sub) = node.subtree {
                    let tree = repo.runtime().block_on(repo.load_tree(&sub))?;
                    walk.push_children(&rel, tree)?;
                }
                out.dirs.push((rel, meta_of(&node)));
            }
            NodeKind::File => {
                if files_tx.send((rel, node)).is_err() {
                    break;
                }
            }
            NodeKind::Symlink => out.symlinks.push((rel, node)),
        }
    }
    Ok(out)
}

fn restore_file(
    repo: &Arc<Repository>,
    target: &Path,
    rel: &Path,
    node: &Node,
    force: bool,
    chown: bool,
    progress: &Progress,
) -> Result<()> {
    let path = target.join(rel);
    // Blobs are written whole (KiB to MiB each), so no extra buffering.
    let mut out = files::create_file(&path, force)?;
    let threads = if node.content.len() > 4 { 2 } else { 1 };
    let mut reader = ContentReader::new(repo.clone(), node.content.clone(), threads);
    let mut written = 0u64;
    while let Some(blob) = reader.next_blob()? {
        out.write_all(&blob)
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
        written += blob.len() as u64;
        progress.add_bytes(blob.len() as u64);
    }
    out.flush()
        .map_err(EngineError::io(format!("writing {}", path.display())))?;
    if written != node.size {
        return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "{}: restored {written} bytes, the snapshot records {}",
            path.display(),
            node.size
        ))));
    }
    drop(out);
    files::apply_meta(&path, EntryKind::File, &meta_of(node), chown)?;
    progress.add_file();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_target_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"x\0y"] {
            let n = Node::new(bad, NodeKind::File);
            assert!(entry_name(&n).is_err(), "{bad:?}");
        }
        for good in [&b"app"[..], b".env", b"..hidden", b"caf\xe9"] {
            let n = Node::new(good, NodeKind::File);
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(entry_name(&n).unwrap().as_bytes(), good);
        }
    }
}
