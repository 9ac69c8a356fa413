//! Restore of files from a snapshot: plan, then execute.
//!
//! [`plan`] walks the snapshot's trees (or the chosen sub-paths), counts
//! what it will create under the target and lists the entries that already
//! exist as conflicts, and reads the marker of an unfinished restore (resume
//! info). [`execute`] refuses conflicts unless forced or resuming, then
//! walks the trees again: it creates each directory as it comes to it, makes
//! each symlink, restores files in batches (each batch's blobs read pack by
//! pack, every needed pack fetched once, several in flight, each blob
//! written at every offset that needs it), then links the later paths of hardlink groups, and finally applies
//! directory metadata deepest first (so writing children does not disturb
//! their parent's mtime). Both walks are depth first and hold one directory
//! per level, never the whole snapshot: memory grows with the number of
//! directories (and of hardlinked files), not files.
//!
//! Atomic and resumable: every file, link and symlink is made under a
//! temporary name ([`files::TEMP_PREFIX`]) in its directory, its data
//! fsynced and its metadata applied, then renamed into place, so a killed
//! restore never leaves a cut-short file under its real name. While it runs
//! the target holds [`MARKER`] naming the snapshot and paths; a restore of
//! the same snapshot and paths into that target resumes without `--force`:
//! leftover temporary entries are removed, files already in place with the
//! snapshot's size, mtime and mode are kept, the rest is written. The marker
//! is removed once everything is in place and the directories are fsynced.
//!
//! Fidelity: files of one hardlink group (same `(dev, inode)` in the
//! snapshot) are written once and linked within the restored subset; sparse
//! files get holes for their zero blocks; owners are restored when running
//! as root; extended attributes (POSIX ACLs included) are set.

use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{Id, Node, NodeKind, Repository, Snapshot};
use lifeboat_sources::files::{self, EntryKind, RestoreMeta};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file a restore keeps in its target directory while it runs.
pub const MARKER: &str = files::RESTORE_MARKER;

/// What [`MARKER`] holds: which restore is under way in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Snapshot id.
    pub snapshot: String,
    /// The `--path` selection (empty: everything).
    pub paths: Vec<String>,
}

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
    /// The restore this plan is (snapshot and paths), written to [`MARKER`].
    pub marker: Marker,
    /// The marker of an unfinished restore found in the target, if any.
    pub found_marker: Option<Marker>,
    summary: RestoreSummary,
}

impl RestorePlan {
    /// Whether this plan completes an unfinished restore of the same
    /// snapshot and paths (existing entries are then its own work).
    pub fn resumes(&self) -> bool {
        self.found_marker.as_ref() == Some(&self.marker)
    }
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

/// The marker of an unfinished restore in `target`, if one is there.
/// A marker that is not a regular file made by this user was not left by
/// a restore of ours (another user planted it in a target they can write
/// to, to have existing files replaced or kept without `--force`): it is
/// reported as another restore's, which is refused without `--force`.
fn read_marker(target: &Path) -> Option<Marker> {
    let path = target.join(MARKER);
    let m = std::fs::symlink_metadata(&path).ok()?;
    let mine = std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == m.uid());
    if !m.is_file() || !mine {
        return Some(Marker {
            snapshot: format!("(marker not made by this user: owner uid {})", m.uid()),
            paths: Vec::new(),
        });
    }
    let bytes = std::fs::read(&path).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or(Marker {
        snapshot: "(unreadable marker)".into(),
        paths: Vec::new(),
    }))
}

/// Plan restoring snapshot `id` (or `subpaths` inside it) into `target`.
pub async fn plan(
    repo: &Arc<Repository>,
    id: &Id,
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
        marker: Marker {
            snapshot: id.to_string(),
            paths: subpaths.to_vec(),
        },
        found_marker: read_marker(target),
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

pub(crate) async fn find_node(
    repo: &Repository,
    mut tree: lifeboat_repo::Tree,
    sub: &str,
) -> Result<Node> {
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

/// Carry out a plan. Without `force`, any conflict aborts before anything
/// is written, unless the plan resumes an unfinished restore of the same
/// snapshot and paths; a target holding another unfinished restore is
/// refused too.
pub async fn execute(
    repo: &Arc<Repository>,
    plan: RestorePlan,
    force: bool,
    progress: Arc<Progress>,
) -> Result<RestoreSummary> {
    if !force {
        refuse_conflicts(&plan)?;
    }
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || execute_blocking(&repo, &plan, force, &progress))
        .await
        .expect("restore thread panicked")
}

fn refuse_conflicts(plan: &RestorePlan) -> Result<()> {
    if plan.resumes() {
        return Ok(());
    }
    if let Some(other) = &plan.found_marker {
        return Err(EngineError::TargetNotEmpty(format!(
            "{} holds an unfinished restore of snapshot {} (paths {:?}, marker {MARKER}): rerun that restore to complete it, or pass --force; nothing was written",
            plan.target.display(),
            other.snapshot,
            other.paths
        )));
    }
    if plan.conflicts.is_empty() {
        return Ok(());
    }
    let first: Vec<String> = plan
        .conflicts
        .iter()
        .take(3)
        .map(|p| p.display().to_string())
        .collect();
    Err(EngineError::TargetNotEmpty(format!(
        "restore would overwrite {} existing path(s), e.g. {}: choose an empty target or pass --force; nothing was written",
        plan.conflicts.len(),
        first.join(", ")
    )))
}

fn meta_of(n: &Node) -> RestoreMeta {
    RestoreMeta {
        mode: n.mode,
        mtime_ns: n.mtime_ns,
        uid: n.uid,
        gid: n.gid,
        xattrs: n.xattr_values(),
    }
}

/// How entries are put in place.
struct Put<'a> {
    target: &'a Path,
    /// Replace existing entries (`--force`, or resuming).
    replace: bool,
    /// Keep files already in place with the snapshot's metadata (resuming).
    keep_done: bool,
    chown: bool,
    progress: &'a Progress,
}

/// Write the marker (atomically, fsynced) before anything else.
fn write_marker(target: &Path, marker: &Marker) -> Result<()> {
    let tmp = files::temp_file_in(target)?;
    let json = serde_json::to_vec(marker).expect("marker serializes");
    let path = target.join(MARKER);
    let write_err = || EngineError::io(format!("writing {}", path.display()));
    tmp.as_file().write_all(&json).map_err(write_err())?;
    tmp.as_file().sync_all().map_err(write_err())?;
    files::put_in_place(tmp.into_temp_path(), &path, true)?;
    Ok(files::sync_dir(target)?)
}

/// Sync every directory, then remove the marker: a target without the
/// marker is complete and durable.
fn finish(target: &Path, dirs: &[(PathBuf, RestoreMeta)]) -> Result<()> {
    for (rel, _) in dirs {
        files::sync_dir(&target.join(rel))?;
    }
    let marker = target.join(MARKER);
    std::fs::remove_file(&marker)
        .map_err(EngineError::io(format!("removing {}", marker.display())))?;
    Ok(files::sync_dir(target)?)
}

fn execute_blocking(
    repo: &Arc<Repository>,
    plan: &RestorePlan,
    force: bool,
    progress: &Progress,
) -> Result<RestoreSummary> {
    let put = Put {
        target: &plan.target,
        replace: force || plan.resumes(),
        keep_done: plan.resumes(),
        chown: files::can_chown(),
        progress,
    };
    let target = &plan.target;
    std::fs::create_dir_all(target)
        .map_err(EngineError::io(format!("creating {}", target.display())))?;
    write_marker(target, &plan.marker)?;
    files::remove_temp_entries(target)?;
    let Walked { dirs, links } = walk_and_restore_files(repo, plan, &put)?;
    // Every group's first file is written now: link the later paths to it.
    for link in &links {
        put.hardlink(link)?;
    }
    for (rel, meta) in dirs.iter().rev() {
        files::apply_meta(&target.join(rel), EntryKind::Dir, meta, put.chown)?;
    }
    finish(target, &dirs)?;
    Ok(plan.summary())
}

/// Files are restored in batches of at most this many blob references
/// (or [`BATCH_FILES`] files), in tree order: each batch's blobs are read
/// pack by pack, each pack it needs fetched once (`lifeboat_repo::by_pack`).
const BATCH_BLOBS: usize = 65_536;
/// Files per batch at most.
const BATCH_FILES: usize = 1_024;
/// Packs fetched at once.
const PACKS_IN_FLIGHT: usize = 4;

/// Files waiting to be restored together, see [`BATCH_BLOBS`].
#[derive(Default)]
struct Batch {
    files: Vec<(PathBuf, Node)>,
    blobs: usize,
}

impl Batch {
    fn push(&mut self, rel: PathBuf, node: Node) -> bool {
        self.blobs += node.content.len();
        self.files.push((rel, node));
        self.blobs >= BATCH_BLOBS || self.files.len() >= BATCH_FILES
    }
}

/// A later path of a hardlink group, to link to the group's first file
/// once that is written.
struct Link {
    /// Path relative to the target.
    rel: PathBuf,
    /// The group's first restored path, relative to the target.
    leader: PathBuf,
    /// Size of the file (for progress).
    size: u64,
}

/// What the restore walk leaves for after the files: directories (for
/// their metadata, in pre-order, and their fsync) and the later paths of
/// hardlink groups.
struct Walked {
    dirs: Vec<(PathBuf, RestoreMeta)>,
    links: Vec<Link>,
}

/// Walk the plan's trees: create each directory (removing leftover
/// temporary entries of an earlier run), make each symlink, restore files
/// in batches ([`Batch`]), or remember a file as a later path of a
/// hardlink group.
fn walk_and_restore_files(
    repo: &Arc<Repository>,
    plan: &RestorePlan,
    put: &Put<'_>,
) -> Result<Walked> {
    let mut out = Walked {
        dirs: Vec::new(),
        links: Vec::new(),
    };
    // Hardlink group -> the first path restored of it. This (and `links`)
    // is the one part of the restore's state that grows with files, and
    // only with files that are hardlinked in the snapshot (link count > 1):
    // ordinary files are never remembered.
    let mut first: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut batch = Batch::default();
    let mut walk = PreOrder::new(&plan.starts);
    while let Some((rel, node)) = walk.pop() {
        match node.kind {
            NodeKind::Dir => {
                let dir = plan.target.join(&rel);
                files::create_dir(&dir)?;
                files::remove_temp_entries(&dir)?;
                if let Some(sub) = node.subtree {
                    let tree = repo.runtime().block_on(repo.load_tree(&sub))?;
                    walk.push_children(&rel, tree)?;
                }
                out.dirs.push((rel, meta_of(&node)));
            }
            NodeKind::File => {
                if let Some(g) = node.hardlink_group() {
                    if let Some(leader) = first.get(&g) {
                        out.links.push(Link {
                            rel,
                            leader: leader.clone(),
                            size: node.size,
                        });
                        continue;
                    }
                    first.insert(g, rel.clone());
                }
                if batch.push(rel, node) {
                    put.files(repo, std::mem::take(&mut batch).files)?;
                }
            }
            NodeKind::Symlink => put.symlink(&rel, &node)?,
        }
    }
    put.files(repo, batch.files)?;
    Ok(out)
}

/// A file of a batch being written under its temporary name.
struct Pending {
    path: PathBuf,
    node: Node,
    temp: tempfile::TempPath,
    written: u64,
}

/// The plaintext length of a blob, from the index (reloaded once on a miss).
fn raw_len(repo: &Repository, id: &Id) -> Result<u64> {
    let mut loc = repo.index().lookup(id);
    if loc.is_none() && repo.runtime().block_on(repo.refresh_index())? {
        loc = repo.index().lookup(id);
    }
    loc.map(|l| u64::from(l.raw_len)).ok_or_else(|| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "blob {id} is not in the index (missing data); run `lifeboat verify`"
        )))
    })
}

/// Write `blob` at `pos` of `out`; for a sparse file, whole zero blocks
/// (aligned to the file offset) are left unwritten (holes).
fn write_blob_at(out: &std::fs::File, blob: &[u8], pos: u64, sparse: bool) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if !sparse {
        return out.write_all_at(blob, pos);
    }
    let (mut rest, mut at) = (blob, pos);
    while !rest.is_empty() {
        let n = ((HOLE_BLOCK - at % HOLE_BLOCK) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        if !piece.iter().all(|&b| b == 0) {
            out.write_all_at(piece, at)?;
        }
        at += n as u64;
        rest = tail;
    }
    Ok(())
}

/// File system block size that holes are made of.
const HOLE_BLOCK: u64 = 4096;

impl Put<'_> {
    fn parent_of(path: &Path) -> &Path {
        path.parent().unwrap_or(Path::new("."))
    }

    /// Whether a resumed restore already put this file in place: an entry
    /// under the final name is always complete, so metadata tells.
    fn already_done(&self, path: &Path, node: &Node) -> bool {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            return false;
        };
        self.keep_done
            && m.is_file()
            && m.len() == node.size
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == node.mtime_ns
            && m.mode() & 0o7777 == node.mode
            && if self.chown {
                m.uid() == node.uid && m.gid() == node.gid
            } else {
                // Not root: a file this restore made is ours. One owned by
                // someone else was planted (a target other users can write
                // to, with a planted marker) and would stay theirs to change.
                std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == m.uid())
            }
    }

    /// Restore a batch of files: each under a temporary name, its blobs
    /// read pack by pack and written at every offset that needs them, then
    /// checked against the recorded size, fsynced, given its metadata and
    /// renamed into place.
    fn files(&self, repo: &Arc<Repository>, batch: Vec<(PathBuf, Node)>) -> Result<()> {
        let mut pending: Vec<Pending> = Vec::new();
        // Blob -> (file, offset) of every place it goes.
        let mut uses: HashMap<Id, Vec<(usize, u64)>> = HashMap::new();
        for (rel, node) in batch {
            let path = self.target.join(rel);
            if self.already_done(&path, &node) {
                self.progress.add_bytes(node.size);
                self.progress.add_file();
                continue;
            }
            let temp = files::temp_file_in(Self::parent_of(&path))?.into_temp_path();
            let mut at = 0;
            for id in &node.content {
                uses.entry(*id).or_default().push((pending.len(), at));
                at += raw_len(repo, id)?;
            }
            pending.push(Pending {
                path,
                node,
                temp,
                written: 0,
            });
        }
        self.write_blobs(repo, &mut pending, uses)?;
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8);
        let chunk = pending.len().div_ceil(workers).max(1);
        let mut chunks = Vec::new();
        while !pending.is_empty() {
            let rest = pending.split_off(chunk.min(pending.len()));
            chunks.push(std::mem::replace(&mut pending, rest));
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|files| s.spawn(move || files.into_iter().try_for_each(|p| self.complete(p))))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("restore thread panicked"))
        })
    }

    /// Read the batch's blobs by pack and write each where it is used.
    fn write_blobs(
        &self,
        repo: &Arc<Repository>,
        pending: &mut [Pending],
        mut uses: HashMap<Id, Vec<(usize, u64)>>,
    ) -> Result<()> {
        let ids: Vec<Id> = uses.keys().copied().collect();
        let mut failed: Option<EngineError> = None;
        // The last file written stays open: a file's blobs come in runs.
        let mut open: Option<(usize, std::fs::File)> = None;
        let read = lifeboat_repo::by_pack::read_by_pack(repo, ids, PACKS_IN_FLIGHT, |id, blob| {
            for (i, at) in uses.remove(id).unwrap_or_default() {
                let p = &mut pending[i];
                let written = match &open {
                    Some((j, f)) if *j == i => write_blob_at(f, &blob, at, p.node.sparse),
                    _ => std::fs::OpenOptions::new()
                        .write(true)
                        .open(&p.temp)
                        .and_then(|f| {
                            let r = write_blob_at(&f, &blob, at, p.node.sparse);
                            open = Some((i, f));
                            r
                        }),
                };
                if let Err(e) = written {
                    failed = Some(EngineError::io(format!("writing {}", p.path.display()))(e));
                    return Err(lifeboat_repo::Error::Invalid("restore write failed".into()));
                }
                p.written += blob.len() as u64;
                self.progress.add_bytes(blob.len() as u64);
            }
            Ok(())
        });
        match (failed, read) {
            (Some(e), _) => Err(e),
            (None, r) => Ok(r?),
        }
    }

    /// Check, fsync, set metadata and rename one written file into place.
    fn complete(&self, p: Pending) -> Result<()> {
        let Pending {
            path,
            node,
            temp,
            written,
        } = p;
        if written != node.size {
            return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
                "{}: restored {written} bytes, the snapshot records {}",
                path.display(),
                node.size
            ))));
        }
        let write_err = || EngineError::io(format!("writing {}", path.display()));
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(&temp)
            .map_err(write_err())?;
        // Trailing holes: extend to the size without writing.
        out.set_len(written).map_err(write_err())?;
        // The data is durable before the file gets its real name.
        out.sync_data().map_err(write_err())?;
        drop(out);
        files::apply_meta(&temp, EntryKind::File, &meta_of(&node), self.chown)?;
        files::put_in_place(temp, &path, self.replace)?;
        self.progress.add_file();
        Ok(())
    }

    /// Link a hardlink group's later path to the group's written file.
    fn hardlink(&self, link: &Link) -> Result<()> {
        let path = self.target.join(&link.rel);
        let leader = self.target.join(&link.leader);
        let same = |a: &Path, b: &Path| match (std::fs::symlink_metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        };
        if !(self.replace && same(&path, &leader)) {
            let temp = files::temp_hardlink_in(Self::parent_of(&path), &leader)?;
            files::put_in_place(temp, &path, self.replace)?;
        }
        self.progress.add_bytes(link.size);
        self.progress.add_file();
        Ok(())
    }

    fn symlink(&self, rel: &Path, node: &Node) -> Result<()> {
        let path = self.target.join(rel);
        let target = node.target_bytes().unwrap_or_default();
        let temp = files::temp_symlink_in(Self::parent_of(&path), &target)?;
        files::apply_meta(&temp, EntryKind::Symlink, &meta_of(node), self.chown)?;
        Ok(files::put_in_place(temp, &path, self.replace)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_only_files_this_user_owns_when_not_root() {
        if !files::can_chown() {
            eprintln!("SKIPPED: needs root to plant a file owned by another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"planted!").unwrap();
        let mut node = Node::new(b"f", NodeKind::File);
        node.size = 8;
        node.mode = 0o644;
        node.mtime_ns = 1_614_830_400 * 1_000_000_000;
        files::apply_meta(&path, EntryKind::File, &meta_of(&node), false).unwrap();
        let progress = Progress::default();
        let put = Put {
            target: dir.path(),
            replace: true,
            keep_done: true,
            chown: false,
            progress: &progress,
        };
        assert!(
            put.already_done(&path, &node),
            "our own finished file is kept"
        );
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
        assert!(
            !put.already_done(&path, &node),
            "a file another user planted with matching size, mtime and mode is rewritten"
        );
    }

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
