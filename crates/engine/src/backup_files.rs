//! Backup of a files source: walk the paths, store content and trees, write the snapshot.
//!
//! Steps: resolve the paths; find the parent snapshot (latest of the same
//! source and paths); walk, reusing the parent's content for files whose
//! size, mtime, ctime and inode are unchanged (so an unchanged tree is read
//! from metadata alone); store `.env` files with secrets redacted; add the
//! optional environment capture; seal the snapshot.
//! Unreadable entries below the given paths become warnings, not failures.
//!
//! Fidelity: each node keeps its extended attributes (and so POSIX ACLs),
//! a sparse flag, and for files linked more than once the (device, inode)
//! group, whose content is read once. A file whose size, mtime or ctime
//! differ after reading from before is stored as read, warned about and
//! listed in the snapshot's `meta.changed_files` (the CLI exits 3).

use crate::error::{EngineError, Result};
use crate::meta::FilesMeta;
use crate::progress::Progress;
use crate::store::{seal_snapshot, snapshot_time, store_stream, store_tree, stream_node};
use lifeboat_repo::chunker::FastCdc;
use lifeboat_repo::index::Index;
use lifeboat_repo::{
    BlobKind, BlobWriter, Id, Node, NodeKind, Repository, Snapshot, SnapshotKind, SnapshotStats,
    Tree,
};
use lifeboat_sources::env::{is_env_file, Redactor};
use lifeboat_sources::files::{
    entry_meta, file_meta, list_dir, read_link, read_xattrs, EntryKind, EntryMeta, FilesError,
    Selection,
};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to back up.
pub struct FilesBackup {
    /// Source name recorded in the snapshot.
    pub source: String,
    /// Paths to back up.
    pub paths: Vec<PathBuf>,
    /// Include/exclude globs.
    pub selection: Selection,
    /// Secret redaction for `.env` files and the environment capture.
    pub redactor: Redactor,
    /// Also store the process environment as `environment.env`.
    pub capture_env: bool,
    /// Snapshot time (RFC 3339) instead of now.
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// The result of a backup.
#[derive(Debug)]
pub struct BackupOutcome {
    /// Snapshot id.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Entries skipped with the reason.
    pub warnings: Vec<String>,
}

/// Largest environment file redacted in memory; larger ones are skipped with a warning.
const MAX_REDACTED_FILE: u64 = 16 << 20;

/// Name of the environment capture in the snapshot's root tree.
pub const ENV_CAPTURE_NAME: &str = "environment.env";

/// Run a files backup.
pub async fn backup_files(
    repo: Arc<Repository>,
    req: FilesBackup,
    progress: Arc<Progress>,
) -> Result<BackupOutcome> {
    repo.ensure_writable()?;
    let started = std::time::Instant::now();
    let time = snapshot_time(req.time.as_deref())?;
    let paths = absolute_paths(&req.paths)?;
    let path_strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let parent = repo.snapshots().await?.into_iter().rev().find(|(_, s)| {
        s.source == req.source && s.paths == path_strings && s.kind == SnapshotKind::Files
    });
    // The parent only saves reading unchanged files: if its tree cannot be
    // read (damaged repository), back up everything from scratch.
    let parent_tree = match &parent {
        Some((_, s)) => repo.load_tree(&s.tree).await.ok(),
        None => None,
    };
    progress.set_phase("backing up files");
    let writer = BlobWriter::new(repo.clone());
    let (writer, root, walk) = tokio::task::spawn_blocking({
        let repo = repo.clone();
        let time = time.clone();
        move || -> Result<(BlobWriter, Id, WalkResult)> {
            let chunker = repo.cdc_chunker();
            let (root_id, result) = std::thread::scope(|s| -> Result<(Id, WalkResult)> {
                let reads = ReadPool::start(s, &writer, &chunker, &progress);
                let w = Walk::new(&repo, &writer, &req, &progress, reads);
                walk_paths(w, &paths, parent_tree.as_ref(), &time)
            })?;
            Ok((writer, root_id, result))
        }
    })
    .await
    .expect("backup thread panicked")?;
    let mut stats = walk.stats;
    let snap = Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time,
        host: crate::open::hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        source: walk.source,
        kind: SnapshotKind::Files,
        paths: path_strings,
        tags: walk.tags,
        tree: root,
        parent: parent.map(|(id, _)| id),
        stats: {
            stats.duration_ms = started.elapsed().as_millis() as u64;
            stats
        },
        meta: crate::meta::to_value(&FilesMeta {
            redacted_files: walk.redacted,
            environment_captured: walk.env_captured,
            warnings: walk.warnings.len(),
            changed_files: walk.changed,
        }),
    };
    let (id, snapshot) = seal_snapshot(&repo, writer, snap).await?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings: walk.warnings,
    })
}

/// Walk each given path into the root tree (plus the environment capture)
/// and store it; returns the root tree id and the walk's figures.
fn walk_paths(
    mut w: Walk<'_>,
    paths: &[std::path::PathBuf],
    parent_tree: Option<&Tree>,
    time: &str,
) -> Result<(Id, WalkResult)> {
    let mut root = Tree::default();
    for path in paths {
        let name = path
            .file_name()
            .map_or(b"/".to_vec(), |n| n.as_bytes().to_vec());
        let meta = entry_meta(path)?;
        let prev = parent_tree.and_then(|t| t.get(&name));
        let pending = w
            .needs_read(path, &name, &meta, prev)
            .then(|| w.reads.submit(path));
        if let Some(node) = w.node(path, &name, &meta, prev, pending.map(Pending::wait))? {
            root.nodes.push(node);
        }
    }
    if w.req.capture_env {
        root.nodes.push(w.env_capture(time)?);
    }
    let root_id = store_tree(w.writer, root)?;
    Ok((root_id, w.result()))
}

/// The absolute path with `.` and `..` resolved (the directory part
/// canonicalized; the last component kept as given, so a symlink is stored as
/// a symlink, not followed).
fn resolve_path(p: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(p).map_err(EngineError::io(format!("resolving {}", p.display())))?;
    let canonical = |q: &Path| {
        std::fs::canonicalize(q)
            .map_err(|e| EngineError::Config(format!("cannot back up {}: {e}", p.display())))
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(canonical(parent)?.join(name)),
        _ => canonical(&abs),
    }
}

fn absolute_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let abs = resolve_path(p)?;
        std::fs::symlink_metadata(&abs)
            .map_err(|e| EngineError::Config(format!("cannot back up {}: {e}", abs.display())))?;
        let name = abs.file_name().map(|n| n.to_os_string()).ok_or_else(|| {
            EngineError::Config(format!(
                "cannot back up {}: it has no last component to store it under; list the directories below it instead",
                abs.display()
            ))
        })?;
        if !seen.insert(name.clone()) {
            return Err(EngineError::Config(format!(
                "two paths end in {:?}: each path is stored under its last component, so they must differ",
                name
            )));
        }
        out.push(abs);
    }
    Ok(out)
}

struct WalkResult {
    source: String,
    tags: Vec<String>,
    stats: SnapshotStats,
    warnings: Vec<String>,
    redacted: Vec<String>,
    changed: Vec<String>,
    env_captured: bool,
}

/// What the walk knows of a hardlink group's first path: its content and
/// the metadata it was read with.
struct Linked {
    content: Vec<Id>,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

struct Walk<'a> {
    repo: &'a Repository,
    writer: &'a BlobWriter,
    req: &'a FilesBackup,
    progress: &'a Progress,
    chunker: FastCdc,
    index: Arc<Index>,
    stats: SnapshotStats,
    warnings: Vec<String>,
    redacted: Vec<String>,
    changed: Vec<String>,
    env_captured: bool,
    reads: ReadPool,
    linked: HashMap<(u64, u64), Linked>,
}

impl<'a> Walk<'a> {
    fn new(
        repo: &'a Repository,
        writer: &'a BlobWriter,
        req: &'a FilesBackup,
        progress: &'a Progress,
        reads: ReadPool,
    ) -> Self {
        Walk {
            repo,
            writer,
            req,
            progress,
            chunker: repo.cdc_chunker(),
            index: repo.index(),
            stats: SnapshotStats::default(),
            warnings: Vec::new(),
            redacted: Vec::new(),
            changed: Vec::new(),
            env_captured: false,
            reads,
            linked: HashMap::new(),
        }
    }

    fn result(self) -> WalkResult {
        WalkResult {
            source: self.req.source.clone(),
            tags: self.req.tags.clone(),
            stats: self.stats,
            warnings: self.warnings,
            redacted: self.redacted,
            changed: self.changed,
            env_captured: self.env_captured,
        }
    }

    fn warn(&mut self, e: impl std::fmt::Display) {
        self.warnings.push(e.to_string());
    }

    /// The node for `path`, or `None` when it is excluded or skipped.
    fn node(
        &mut self,
        path: &Path,
        name: &[u8],
        meta: &EntryMeta,
        prev: Option<&Node>,
        prefetched: Option<Content>,
    ) -> Result<Option<Node>> {
        let sel = &self.req.selection;
        let kind = match meta.kind {
            EntryKind::File if sel.keeps_file(path) => NodeKind::File,
            EntryKind::Dir if !sel.excluded(path) => NodeKind::Dir,
            EntryKind::Symlink if sel.keeps_file(path) => NodeKind::Symlink,
            EntryKind::Other => {
                self.warn(format!(
                    "{}: skipped (socket, FIFO or device)",
                    path.display()
                ));
                return Ok(None);
            }
            _ => return Ok(None),
        };
        if kind == NodeKind::File
            && self.redacts(&String::from_utf8_lossy(name), meta)
            && meta.size > MAX_REDACTED_FILE
        {
            self.warn(format!(
                "{}: not stored: an environment file over {} MiB cannot be redacted in memory (rename it, or pass --no-redact to store it as is)",
                path.display(),
                MAX_REDACTED_FILE >> 20
            ));
            return Ok(None);
        }
        let mut node = Node::new(name, kind);
        node.mode = meta.mode;
        node.mtime_ns = meta.mtime_ns;
        node.uid = meta.uid;
        node.gid = meta.gid;
        let prev = prev.filter(|p| p.kind == kind);
        match prev.filter(|p| same_inode_state(p, meta)) {
            // Setting or removing an extended attribute (an ACL too)
            // changes the ctime: an unchanged inode has the parent's.
            Some(p) => node.xattrs = p.xattrs.clone(),
            None => node.set_xattrs(&read_xattrs(path)?),
        }
        match kind {
            NodeKind::File => {
                node.ctime_ns = meta.ctime_ns;
                node.inode = meta.inode;
                node.sparse = meta.sparse;
                if meta.nlink > 1 {
                    node.dev = meta.dev;
                    node.links = meta.nlink;
                }
                self.file_content(path, &mut node, meta, prev, prefetched)?;
                self.stats.files += 1;
                self.progress.add_file();
            }
            NodeKind::Symlink => node.set_target(&read_link(path)?),
            NodeKind::Dir => {
                let subtree = self.dir(path, prev)?;
                if subtree.nodes.is_empty() && sel.has_includes() {
                    return Ok(None);
                }
                node.subtree = Some(store_tree(self.writer, subtree)?);
                self.stats.dirs += 1;
            }
        }
        Ok(Some(node))
    }

    fn dir(&mut self, path: &Path, prev: Option<&Node>) -> Result<Tree> {
        // The whole parent directory, all parts of a split one (a part
        // missing or damaged only costs re-reading its files).
        let prev_nodes = prev
            .and_then(|p| p.subtree)
            .and_then(|id| self.repo.load_tree_blocking(&id).ok())
            .map(|t| t.nodes)
            .unwrap_or_default();
        let mut parent = ParentMatch::new(prev_nodes);
        let mut entries = Vec::new();
        for name in list_dir(path)? {
            let child = path.join(&name);
            match entry_meta(&child) {
                Ok(meta) => {
                    let p = parent.take(name.as_bytes());
                    entries.push((child, name, meta, p));
                }
                Err(e) => self.warn(e),
            }
        }
        // Queue this directory's files for the reader pool, walk the
        // subdirectories while they are read, then collect the results:
        // reads overlap across directories and trees keep name order.
        let mut pending: Vec<Option<Pending>> = entries
            .iter()
            .map(|(child, name, meta, p)| {
                self.needs_read(child, name.as_bytes(), meta, p.as_ref())
                    .then(|| self.reads.submit(child))
            })
            .collect();
        let mut nodes: Vec<Option<Node>> = vec![None; entries.len()];
        let dirs_first = (0..entries.len()).filter(|&i| entries[i].2.kind == EntryKind::Dir);
        let then_the_rest = (0..entries.len()).filter(|&i| entries[i].2.kind != EntryKind::Dir);
        for i in dirs_first.chain(then_the_rest) {
            let (child, name, meta, p) = &entries[i];
            let content = pending[i].take().map(Pending::wait);
            match self.node(child, name.as_bytes(), meta, p.as_ref(), content) {
                Ok(n) => nodes[i] = n,
                Err(EngineError::Files(e @ FilesError::Io { .. })) => self.warn(e),
                Err(e) => return Err(e),
            }
        }
        Ok(Tree {
            nodes: nodes.into_iter().flatten().collect(),
            next: None,
        })
    }

    /// Whether the entry is a file whose content must be read and stored
    /// (selected, not stored redacted, not unchanged since the parent).
    fn needs_read(&self, path: &Path, name: &[u8], meta: &EntryMeta, prev: Option<&Node>) -> bool {
        meta.kind == EntryKind::File
            && self.req.selection.keeps_file(path)
            && !self.redacts(&String::from_utf8_lossy(name), meta)
            && (is_env_file(&String::from_utf8_lossy(name))
                || (self.reusable(prev, meta).is_none() && self.linked_content(meta).is_none()))
    }

    /// The content already stored for another path of the same hardlink
    /// group, when that path was read with the same size, mtime and ctime.
    fn linked_content(&self, meta: &EntryMeta) -> Option<Vec<Id>> {
        if meta.nlink < 2 {
            return None;
        }
        let l = self.linked.get(&(meta.dev, meta.inode))?;
        (l.size == meta.size && l.mtime_ns == meta.mtime_ns && l.ctime_ns == meta.ctime_ns)
            .then(|| l.content.clone())
    }

    /// Remember a hardlinked file's content for the group's other paths.
    fn remember_linked(&mut self, node: &Node, meta: &EntryMeta) {
        if meta.nlink > 1 {
            self.linked.entry((meta.dev, meta.inode)).or_insert(Linked {
                content: node.content.clone(),
                size: node.size,
                mtime_ns: meta.mtime_ns,
                ctime_ns: meta.ctime_ns,
            });
        }
    }

    /// Whether this file is stored redacted (a small `.env` file with redaction on).
    fn redacts(&self, name: &str, _meta: &EntryMeta) -> bool {
        self.req.redactor.enabled() && is_env_file(name)
    }

    /// The parent snapshot's content when the file is unchanged and its blobs still exist.
    fn reusable(&self, prev: Option<&Node>, meta: &EntryMeta) -> Option<Vec<Id>> {
        let p = prev?;
        (same_inode_state(p, meta) && p.content.iter().all(|id| self.index.contains(id)))
            .then(|| p.content.clone())
    }

    fn file_content(
        &mut self,
        path: &Path,
        node: &mut Node,
        meta: &EntryMeta,
        prev: Option<&Node>,
        prefetched: Option<Content>,
    ) -> Result<()> {
        let name = String::from_utf8_lossy(&node.name_bytes()).into_owned();
        if self.redacts(&name, meta) {
            let text = std::fs::read(path).map_err(lifeboat_sources::files::io_err(path))?;
            let text = String::from_utf8_lossy(&text);
            let (redacted, count) = self.req.redactor.redact_env_file(&text);
            if count > 0 {
                self.redacted.push(path.display().to_string());
            }
            let bytes = redacted.into_bytes();
            node.size = bytes.len() as u64;
            self.stats.bytes += node.size;
            self.progress.add_bytes(node.size);
            node.content = vec![self.writer.add(BlobKind::Data, bytes)?];
            return Ok(());
        }
        node.size = meta.size;
        self.stats.bytes += meta.size;
        // Environment files are always read again: a parent stored with
        // different redaction settings must not stand in for them.
        let known = self
            .reusable(prev, meta)
            .filter(|_| !is_env_file(&name))
            .or_else(|| self.linked_content(meta));
        if let Some(content) = known {
            self.stats.blobs += content.len() as u64;
            self.progress.add_bytes(meta.size);
            node.content = content;
            self.remember_linked(node, meta);
            return Ok(());
        }
        let read = match prefetched {
            Some(r) => r?,
            None => read_file(self.writer, &self.chunker, self.progress, path)?,
        };
        node.content = read.ids;
        node.size = read.size;
        if read.size != meta.size || meta.changed(&read.after) {
            self.warn(format!(
                "{}: changed while being read (size, mtime or ctime differ from before; {} bytes stored, {} expected, now {}): the stored copy may be inconsistent; back it up again when it is quiet",
                path.display(),
                read.size,
                meta.size,
                read.after.size
            ));
            self.changed.push(path.display().to_string());
        } else {
            self.remember_linked(node, meta);
        }
        Ok(())
    }

    fn env_capture(&mut self, time: &str) -> Result<Node> {
        let (text, _) = self.req.redactor.capture(std::env::vars());
        let bytes = text.into_bytes();
        let size = bytes.len() as u64;
        let id = self.writer.add(BlobKind::Data, bytes)?;
        self.env_captured = true;
        let mtime = time
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_nanosecond() as i64)
            .unwrap_or(0);
        Ok(stream_node(ENV_CAPTURE_NAME, vec![id], size, mtime))
    }
}

/// Whether a file is in the state the parent recorded: same inode, size,
/// mtime and ctime (a ctime of 0, as nodes written without one have,
/// never matches a file).
fn same_inode_state(p: &Node, meta: &EntryMeta) -> bool {
    p.kind == NodeKind::File
        && meta.kind == EntryKind::File
        && p.ctime_ns != 0
        && p.size == meta.size
        && p.mtime_ns == meta.mtime_ns
        && p.ctime_ns == meta.ctime_ns
        && p.inode == meta.inode
}

/// The parent snapshot's entries of one directory, matched to the
/// directory's listing in one pass: both are sorted by name bytes, so the
/// match is a merge of two sorted lists, linear in the directory's size and
/// without allocating per comparison. Matched nodes are moved out, not copied.
struct ParentMatch {
    nodes: std::iter::Peekable<std::vec::IntoIter<Node>>,
}

impl ParentMatch {
    fn new(nodes: Vec<Node>) -> Self {
        ParentMatch {
            nodes: nodes.into_iter().peekable(),
        }
    }

    /// The parent's node named `name`, if any. Names must be asked for in
    /// ascending byte order; parent entries sorting before `name` are
    /// dropped (removed since the parent). A parent tree not sorted by
    /// bytes (never written so) only misses matches: files are read again.
    fn take(&mut self, name: &[u8]) -> Option<Node> {
        while let Some(n) = self.nodes.peek() {
            match n.cmp_name(name) {
                std::cmp::Ordering::Less => {
                    self.nodes.next();
                }
                std::cmp::Ordering::Equal => return self.nodes.next(),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// Files read at once.
const READ_THREADS: usize = 6;

/// A file's stored content and its metadata once read.
struct ReadOutcome {
    ids: Vec<Id>,
    size: u64,
    after: EntryMeta,
}

type Content = Result<ReadOutcome>;

fn read_file(writer: &BlobWriter, chunker: &FastCdc, progress: &Progress, path: &Path) -> Content {
    let mut file = std::fs::File::open(path).map_err(lifeboat_sources::files::io_err(path))?;
    let (ids, size) = store_stream(writer, chunker, &mut file, progress)?;
    let after = file_meta(&file, path)?;
    Ok(ReadOutcome { ids, size, after })
}

struct ReadJob {
    path: std::path::PathBuf,
    reply: std::sync::mpsc::SyncSender<Content>,
}

/// [`READ_THREADS`] threads storing file contents, fed by a bounded queue
/// (the walk can be at most a few files ahead of the readers).
struct ReadPool {
    jobs: std::sync::mpsc::SyncSender<ReadJob>,
}

/// A file being read; [`Pending::wait`] gives its content ids and size.
struct Pending(std::sync::mpsc::Receiver<Content>);

impl Pending {
    fn wait(self) -> Content {
        self.0.recv().unwrap_or_else(|_| {
            Err(EngineError::Source(
                "a file reader thread stopped unexpectedly".into(),
            ))
        })
    }
}

impl ReadPool {
    /// Start the readers in `scope`; they stop when the pool is dropped.
    fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        writer: &'env BlobWriter,
        chunker: &'env FastCdc,
        progress: &'env Progress,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ReadJob>(2 * READ_THREADS);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..READ_THREADS {
            let rx = rx.clone();
            scope.spawn(move || loop {
                let job = rx.lock().expect("read queue lock").recv();
                let Ok(job) = job else { return };
                let _ = job
                    .reply
                    .send(read_file(writer, chunker, progress, &job.path));
            });
        }
        ReadPool { jobs: tx }
    }

    /// Queue a file; blocks while the queue is full.
    fn submit(&self, path: &Path) -> Pending {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        let _ = self.jobs.send(ReadJob {
            path: path.to_path_buf(),
            reply,
        });
        Pending(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = list.iter().map(|n| n.to_vec()).collect();
        v.sort();
        v
    }

    /// Matching a listing against the parent's nodes finds exactly the
    /// names both have, whatever was added, removed or renamed between
    /// them, with names that are not UTF-8 (stored lossy, with hex) and
    /// names whose lossy form sorts elsewhere than their bytes.
    #[test]
    fn the_parent_match_pairs_exactly_the_names_in_both_sorted_lists() {
        let parent = names(&[
            b"a",
            b"b",
            b"c\xff",
            "c\u{fffd}".as_bytes(),
            b"d",
            b"e",
            b"f\xc3",
            b"g",
            b"h",
        ]);
        let listing = names(&[
            b"a",
            b"b2",
            b"c\xff",
            b"c\xfe",
            "c\u{fffd}".as_bytes(),
            b"e",
            b"f\xc3\xa9",
            b"h",
            b"z",
        ]);
        let mut tree = Tree {
            nodes: parent
                .iter()
                .map(|n| Node::new(n, NodeKind::File))
                .collect(),
            next: None,
        };
        tree.sort();
        let mut m = ParentMatch::new(tree.nodes);
        for name in &listing {
            let got = m.take(name).map(|n| n.name_bytes());
            let want = parent.contains(name).then(|| name.clone());
            assert_eq!(got, want, "{name:?}");
        }
    }

    #[test]
    fn the_parent_match_of_a_wide_directory_is_one_pass() {
        let parent: Vec<Node> = (0..20_000u32)
            .map(|i| Node::new(format!("f{i:06}").as_bytes(), NodeKind::File))
            .collect();
        let mut m = ParentMatch::new(parent);
        let mut found = 0;
        for i in (0..20_000u32).filter(|i| i % 3 != 0) {
            let name = format!("f{i:06}");
            assert_eq!(m.take(name.as_bytes()).map(|n| n.name), Some(name));
            found += 1;
            assert!(m.take(format!("f{i:06}x").as_bytes()).is_none());
        }
        assert_eq!(found, 13_333);
        assert!(m.take(b"g").is_none());
    }
}
