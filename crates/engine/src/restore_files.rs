//! Restore of files from a snapshot: plan, then execute.
//!
//! [`plan`] walks the snapshot's trees (or the chosen sub-paths) and lists
//! every entry to create under the target, with the ones that already exist
//! as conflicts. [`execute`] refuses conflicts unless forced, then creates
//! directories, writes files in parallel, makes symlinks, and finally
//! applies directory metadata deepest first (so writing children does not
//! disturb their parent's mtime).

use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{ContentReader, Node, NodeKind, Repository, Snapshot};
use lifeboat_sources::files::{self, EntryKind, RestoreMeta};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One entry to create.
#[derive(Debug, Clone)]
pub struct PlanItem {
    /// Path relative to the target.
    pub rel: PathBuf,
    /// The node (metadata and content).
    pub node: Node,
}

/// What a restore will do.
#[derive(Debug, Default)]
pub struct RestorePlan {
    /// Target directory.
    pub target: PathBuf,
    /// Entries in pre-order (parents before children).
    pub items: Vec<PlanItem>,
    /// Existing paths the restore would overwrite.
    pub conflicts: Vec<PathBuf>,
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
        let mut s = RestoreSummary::default();
        for i in &self.items {
            match i.node.kind {
                NodeKind::File => {
                    s.files += 1;
                    s.bytes += i.node.size;
                }
                NodeKind::Dir => s.dirs += 1,
                NodeKind::Symlink => s.symlinks += 1,
            }
        }
        s
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
        ..Default::default()
    };
    let mut stack: Vec<(PathBuf, Node)> = starts.into_iter().rev().collect();
    while let Some((rel, node)) = stack.pop() {
        let abs = target.join(&rel);
        let exists = std::fs::symlink_metadata(&abs).is_ok();
        if exists && !(node.kind == NodeKind::Dir && abs.is_dir() && !abs.is_symlink()) {
            plan.conflicts.push(abs);
        }
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            let tree = repo.load_tree(&sub).await?;
            for child in tree.nodes.into_iter().rev() {
                stack.push((rel.join(entry_name(&child)?), child));
            }
        }
        plan.items.push(PlanItem { rel, node });
    }
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
    std::fs::create_dir_all(&plan.target).map_err(EngineError::io(format!(
        "creating {}",
        plan.target.display()
    )))?;
    for item in plan.items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
        files::create_dir(&plan.target.join(&item.rel))?;
    }
    let file_items: Vec<&PlanItem> = plan
        .items
        .iter()
        .filter(|i| i.node.kind == NodeKind::File)
        .collect();
    let next = Mutex::new(0usize);
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("next lock");
                    *n += 1;
                    *n - 1
                };
                if i >= file_items.len() || failure.lock().expect("failure lock").is_some() {
                    return;
                }
                if let Err(e) =
                    restore_file(repo, &plan.target, file_items[i], force, chown, progress)
                {
                    failure.lock().expect("failure lock").get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure lock") {
        return Err(e);
    }
    for item in plan
        .items
        .iter()
        .filter(|i| i.node.kind == NodeKind::Symlink)
    {
        let path = plan.target.join(&item.rel);
        files::create_symlink(&item.node.target_bytes().unwrap_or_default(), &path, force)?;
        files::apply_meta(&path, EntryKind::Symlink, &meta_of(&item.node), chown)?;
    }
    for item in plan
        .items
        .iter()
        .rev()
        .filter(|i| i.node.kind == NodeKind::Dir)
    {
        files::apply_meta(
            &plan.target.join(&item.rel),
            EntryKind::Dir,
            &meta_of(&item.node),
            chown,
        )?;
    }
    Ok(plan.summary())
}

fn restore_file(
    repo: &Arc<Repository>,
    target: &Path,
    item: &PlanItem,
    force: bool,
    chown: bool,
    progress: &Progress,
) -> Result<()> {
    let path = target.join(&item.rel);
    // Blobs are written whole (KiB to MiB each), so no extra buffering.
    let mut out = files::create_file(&path, force)?;
    let threads = if item.node.content.len() > 4 { 2 } else { 1 };
    let mut reader = ContentReader::new(repo.clone(), item.node.content.clone(), threads);
    let mut written = 0u64;
    while let Some(blob) = reader.next_blob()? {
        out.write_all(&blob)
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
        written += blob.len() as u64;
        progress.add_bytes(blob.len() as u64);
    }
    out.flush()
        .map_err(EngineError::io(format!("writing {}", path.display())))?;
    if written != item.node.size {
        return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "{}: restored {written} bytes, the snapshot records {}",
            path.display(),
            item.node.size
        ))));
    }
    drop(out);
    files::apply_meta(&path, EntryKind::File, &meta_of(&item.node), chown)?;
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
