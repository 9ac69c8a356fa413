//! Restore of files from a snapshot: plan, then execute.
//!
//! [`plan`] walks the snapshot's trees (or the chosen sub-paths) and lists
//! every entry to create under the target, with the ones that already exist
//! as conflicts. [`execute`] refuses conflicts unless forced, then creates
//! directories, writes files in parallel, makes symlinks, and finally
//! applies directory metadata deepest first (so writing children does not
//! disturb their parent's mtime).
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
use lifeboat_repo::{ContentReader, Id, Node, NodeKind, Repository, Snapshot};
use lifeboat_sources::files::{self, EntryKind, RestoreMeta};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// The restore this plan is (snapshot and paths), written to [`MARKER`].
    pub marker: Marker,
    /// The marker of an unfinished restore found in the target, if any.
    pub found_marker: Option<Marker>,
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
fn finish(plan: &RestorePlan) -> Result<()> {
    for item in plan.items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
        files::sync_dir(&plan.target.join(&item.rel))?;
    }
    let marker = plan.target.join(MARKER);
    std::fs::remove_file(&marker)
        .map_err(EngineError::io(format!("removing {}", marker.display())))?;
    Ok(files::sync_dir(&plan.target)?)
}

/// Split the plan's files into those to write and the later paths of a
/// hardlink group (with the path of the group's first file) to link.
fn split_hardlinks(plan: &RestorePlan) -> (Vec<&PlanItem>, Vec<(&PlanItem, &PlanItem)>) {
    let mut first: HashMap<(u64, u64), &PlanItem> = HashMap::new();
    let mut write = Vec::new();
    let mut link = Vec::new();
    for item in plan.items.iter().filter(|i| i.node.kind == NodeKind::File) {
        match item.node.hardlink_group() {
            Some(g) => match first.get(&g) {
                Some(leader) => link.push((item, *leader)),
                None => {
                    first.insert(g, item);
                    write.push(item);
                }
            },
            None => write.push(item),
        }
    }
    (write, link)
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
    std::fs::create_dir_all(&plan.target).map_err(EngineError::io(format!(
        "creating {}",
        plan.target.display()
    )))?;
    write_marker(&plan.target, &plan.marker)?;
    files::remove_temp_entries(&plan.target)?;
    for item in plan.items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
        let dir = plan.target.join(&item.rel);
        files::create_dir(&dir)?;
        files::remove_temp_entries(&dir)?;
    }
    let (write, link) = split_hardlinks(plan);
    write_files(repo, &put, &write)?;
    for (item, leader) in link {
        put.hardlink(item, leader)?;
    }
    for item in plan
        .items
        .iter()
        .filter(|i| i.node.kind == NodeKind::Symlink)
    {
        put.symlink(item)?;
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
            put.chown,
        )?;
    }
    finish(plan)?;
    Ok(plan.summary())
}

/// Write files on a few threads; the first error stops the others.
fn write_files(repo: &Arc<Repository>, put: &Put<'_>, items: &[&PlanItem]) -> Result<()> {
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
                if i >= items.len() || failure.lock().expect("failure lock").is_some() {
                    return;
                }
                if let Err(e) = put.file(repo, items[i]) {
                    failure.lock().expect("failure lock").get_or_insert(e);
                }
            });
        }
    });
    match failure.into_inner().expect("failure lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// File system block size that holes are made of.
const HOLE_BLOCK: u64 = 4096;

/// Write `blob` at offset `pos`, seeking over whole zero blocks (aligned to
/// the file offset) instead of writing them.
fn write_sparse(out: &mut std::fs::File, blob: &[u8], mut pos: u64) -> std::io::Result<()> {
    let mut rest = blob;
    while !rest.is_empty() {
        let n = ((HOLE_BLOCK - pos % HOLE_BLOCK) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        if piece.iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64))?;
        } else {
            out.write_all(piece)?;
        }
        pos += n as u64;
        rest = tail;
    }
    Ok(())
}

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

    fn file(&self, repo: &Arc<Repository>, item: &PlanItem) -> Result<()> {
        let path = self.target.join(&item.rel);
        if self.already_done(&path, &item.node) {
            self.progress.add_bytes(item.node.size);
            self.progress.add_file();
            return Ok(());
        }
        let (mut out, temp) = files::temp_file_in(Self::parent_of(&path))?.into_parts();
        let write_err = || EngineError::io(format!("writing {}", path.display()));
        let threads = if item.node.content.len() > 4 { 2 } else { 1 };
        let mut reader = ContentReader::new(repo.clone(), item.node.content.clone(), threads);
        let mut written = 0u64;
        // Blobs are written whole (KiB to MiB each), so no extra buffering.
        while let Some(blob) = reader.next_blob()? {
            if item.node.sparse {
                write_sparse(&mut out, &blob, written).map_err(write_err())?;
            } else {
                out.write_all(&blob).map_err(write_err())?;
            }
            written += blob.len() as u64;
            self.progress.add_bytes(blob.len() as u64);
        }
        if written != item.node.size {
            return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
                "{}: restored {written} bytes, the snapshot records {}",
                path.display(),
                item.node.size
            ))));
        }
        // Trailing holes: extend to the size without writing.
        out.set_len(written).map_err(write_err())?;
        // The data is durable before the file gets its real name.
        out.sync_data().map_err(write_err())?;
        drop(out);
        files::apply_meta(&temp, EntryKind::File, &meta_of(&item.node), self.chown)?;
        files::put_in_place(temp, &path, self.replace)?;
        self.progress.add_file();
        Ok(())
    }

    /// Link a hardlink group's later path to the group's written file.
    fn hardlink(&self, item: &PlanItem, leader: &PlanItem) -> Result<()> {
        let path = self.target.join(&item.rel);
        let leader = self.target.join(&leader.rel);
        let same = |a: &Path, b: &Path| match (std::fs::symlink_metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        };
        if !(self.replace && same(&path, &leader)) {
            let temp = files::temp_hardlink_in(Self::parent_of(&path), &leader)?;
            files::put_in_place(temp, &path, self.replace)?;
        }
        self.progress.add_bytes(item.node.size);
        self.progress.add_file();
        Ok(())
    }

    fn symlink(&self, item: &PlanItem) -> Result<()> {
        let path = self.target.join(&item.rel);
        let target = item.node.target_bytes().unwrap_or_default();
        let temp = files::temp_symlink_in(Self::parent_of(&path), &target)?;
        files::apply_meta(&temp, EntryKind::Symlink, &meta_of(&item.node), self.chown)?;
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
