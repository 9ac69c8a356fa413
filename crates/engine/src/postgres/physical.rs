//! Physical base backup of a PostgreSQL cluster (snapshot kind
//! `postgres-physical`, docs/FORMAT.md §9 and §10).
//!
//! Steps: check that the configured PGDATA is the server's (readable here,
//! and its `global/pg_control` holds the server's system identifier: a
//! backup host without the data directory fails before anything starts);
//! open one held session and call `pg_backup_start(label, fast)`
//! (non-exclusive; `pg_start_backup(label, fast, false)` before 15); walk the
//! data directory with pg_basebackup's exclusions
//! ([`lifeboat_sources::postgres::physical`]), following the tablespace
//! links of `pg_tblspc` (their directories are stored under
//! [`TABLESPACES_DIR`] in the root tree); read `global/pg_control` last;
//! `pg_backup_stop`; store `backup_label` and `tablespace_map` as the server
//! returned them, byte for byte; then store the WAL segments from the start
//! to the stop LSN under `pg_wal/`, so the snapshot restores to a consistent
//! cluster on its own (like `pg_basebackup -X fetch`).
//!
//! Relation files are cut into fixed chunks of the repository's
//! `fixed_chunk_size` (1 MiB, page aligned), so unchanged parts of a
//! database dedup against earlier backups; every file is read (no reuse by
//! mtime). With data checksums on, every page of a relation file is verified
//! as it is read: a mismatch on a page whose LSN is newer than the backup's
//! start, or that a second read fixes, is a torn page (WAL replay rewrites
//! it); any other mismatch is reported with the file and block (a warning:
//! the backup is incomplete, exit 3) and recorded in `meta.checksum_failures`.

use super::tools_for;
use crate::backup_files::BackupOutcome;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::store::{seal_snapshot, snapshot_time, store_stream, store_tree};
use lifeboat_repo::{
    BlobKind, BlobWriter, Id, Node, NodeKind, Repository, Snapshot, SnapshotKind, SnapshotStats,
    Tree,
};
use lifeboat_sources::postgres::physical::{self as pd, Exclusion};
use lifeboat_sources::postgres::session::Session;
use lifeboat_sources::postgres::PgTarget;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Snapshot kind of physical backups.
pub const KIND_PHYSICAL: SnapshotKind = SnapshotKind::PostgresPhysical;
/// Root tree entry holding each tablespace's directory, by OID.
pub const TABLESPACES_DIR: &str = ".lifeboat-tablespaces";

/// What to back up.
pub struct PgPhysicalBackup {
    /// Source name.
    pub source: String,
    /// Connection target.
    pub target: PgTarget,
    /// The data directory, as configured (`pgdata`).
    pub pgdata: PathBuf,
    /// Directory with client tools, if configured.
    pub bin_dir: Option<PathBuf>,
    /// Snapshot time (RFC 3339) instead of now.
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// A tablespace at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablespaceRecord {
    /// Its OID (the link name in `pg_tblspc`).
    pub oid: String,
    /// Its location (the link's target).
    pub location: String,
}

/// A page whose checksum did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumFailure {
    /// File, relative to PGDATA.
    pub file: String,
    /// Block number within the file.
    pub block: u64,
}

/// `meta` of a physical snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalMeta {
    /// The data directory backed up.
    pub pgdata: String,
    /// Owner and group of the data directory (restores hand it back to them).
    pub pgdata_uid: u32,
    /// Group of the data directory.
    pub pgdata_gid: u32,
    /// Server version string.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// Major version.
    pub server_major: u32,
    /// `pg_control_system().system_identifier`.
    pub system_identifier: String,
    /// Timeline the backup started on.
    pub timeline: u32,
    /// LSN returned by `pg_backup_start`.
    pub start_lsn: String,
    /// LSN returned by `pg_backup_stop`.
    pub stop_lsn: String,
    /// When `pg_backup_start` returned (RFC 3339).
    pub start_time: String,
    /// When `pg_backup_stop` returned (RFC 3339).
    pub stop_time: String,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// WAL files stored under `pg_wal/` (start to stop segment).
    pub wal_files: Vec<String>,
    /// Whether data checksums are on (pages were verified).
    pub data_checksums: bool,
    /// Relation pages verified.
    pub pages_checked: u64,
    /// Pages that were torn while read (legal; WAL replay rewrites them).
    pub torn_pages: u64,
    /// Pages whose checksum is wrong.
    pub checksum_failures: Vec<ChecksumFailure>,
    /// Tablespaces (their directories are under `.lifeboat-tablespaces/<oid>`).
    pub tablespaces: Vec<TablespaceRecord>,
}

impl PhysicalMeta {
    /// The meta of a physical snapshot.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        if snap.kind != KIND_PHYSICAL {
            return Err(EngineError::Config(format!(
                "snapshot of {:?} is a {} snapshot, not a physical one",
                snap.source, snap.kind
            )));
        }
        crate::meta::parse(snap)
    }
}

/// What the server told us before the backup started.
struct ServerFacts {
    version: String,
    version_num: u32,
    system_identifier: String,
    data_checksums: bool,
    wal_segment_size: u64,
    tablespaces: Vec<TablespaceRecord>,
}

fn one(session: &mut Session, sql: &str) -> Result<String> {
    let rows = session.query(sql).map_err(EngineError::Postgres)?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .unwrap_or_default())
}

fn server_facts(session: &mut Session) -> Result<ServerFacts> {
    let version_num = session
        .server_version_num()
        .map_err(EngineError::Postgres)?;
    let tablespaces = session
        .query(
            "SELECT oid::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid;",
        )
        .map_err(EngineError::Postgres)?
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            Some(TablespaceRecord {
                oid: r.next()?,
                location: r.next()?,
            })
        })
        .collect();
    Ok(ServerFacts {
        version: one(session, "SHOW server_version;")?,
        version_num,
        system_identifier: one(
            session,
            "SELECT system_identifier::text FROM pg_control_system();",
        )?,
        data_checksums: one(session, "SHOW data_checksums;")? == "on",
        wal_segment_size: one(
            session,
            "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size';",
        )?
        .parse()
        .unwrap_or(pd::DEFAULT_WAL_SEGMENT_SIZE),
        tablespaces,
    })
}

/// The system identifier in `global/pg_control` (its first 8 bytes).
fn control_system_identifier(pgdata: &Path) -> Result<u64> {
    let path = pgdata.join("global/pg_control");
    let mut head = [0u8; 8];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| unreadable(pgdata, &path, e))?;
    Ok(u64::from_le_bytes(head))
}

fn unreadable(pgdata: &Path, path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Config(format!(
        "cannot read {} ({e}): a physical backup reads the data directory directly, so run it on the database host as root or the server's OS user, with `pgdata` set to the server's data_directory ({} now)",
        path.display(),
        pgdata.display()
    ))
}

/// Refuse a PGDATA that is not the server's.
fn check_pgdata(pgdata: &Path, facts: &ServerFacts) -> Result<()> {
    let on_disk = control_system_identifier(pgdata)?;
    if on_disk.to_string() != facts.system_identifier {
        return Err(EngineError::Config(format!(
            "{} belongs to another cluster (system identifier {on_disk}, the server's is {}): set `pgdata` to the data directory of the server the source's url connects to",
            pgdata.display(),
            facts.system_identifier
        )));
    }
    Ok(())
}

/// Run a physical backup.
pub async fn backup_physical(
    repo: Arc<Repository>,
    req: PgPhysicalBackup,
    progress: Arc<Progress>,
) -> Result<BackupOutcome> {
    repo.ensure_writable()?;
    let started = std::time::Instant::now();
    let time = snapshot_time(req.time.as_deref())?;
    let parent = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.source == req.source && s.kind == KIND_PHYSICAL)
        .map(|(id, _)| id);
    progress.set_phase("backing up the data directory");
    let writer = BlobWriter::new(repo.clone());
    let (source, tags, pgdata) = (req.source.clone(), req.tags.clone(), req.pgdata.clone());
    let (writer, tree, meta, stats, warnings) = tokio::task::spawn_blocking({
        let repo = repo.clone();
        move || -> Result<_> {
            let (tools, _) = tools_for(&req.target, req.bin_dir.as_deref())?;
            let mut session = Session::open(&tools, &req.target).map_err(EngineError::Postgres)?;
            let facts = server_facts(&mut session)?;
            check_pgdata(&req.pgdata, &facts)?;
            let result = run_backup(&repo, &writer, &mut session, &req, facts, &progress);
            session.close();
            let (tree, meta, stats, warnings) = result?;
            Ok((writer, tree, meta, stats, warnings))
        }
    })
    .await
    .expect("backup thread panicked")?;
    let mut stats = stats;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let snap = Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time,
        host: crate::open::hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        source,
        kind: KIND_PHYSICAL,
        paths: vec![pgdata.display().to_string()],
        tags,
        tree,
        parent,
        stats,
        meta: crate::meta::to_value(&meta),
    };
    let (id, snapshot) = seal_snapshot(&repo, writer, snap).await?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
    })
}

type Backed = (Id, PhysicalMeta, SnapshotStats, Vec<String>);

fn run_backup(
    repo: &Repository,
    writer: &BlobWriter,
    session: &mut Session,
    req: &PgPhysicalBackup,
    facts: ServerFacts,
    progress: &Progress,
) -> Result<Backed> {
    let pgdata_meta =
        std::fs::metadata(&req.pgdata).map_err(|e| unreadable(&req.pgdata, &req.pgdata, e))?;
    let label = format!("lifeboat {}", crate::open::now_rfc3339());
    let start_lsn_text = session
        .backup_start(&label, true)
        .map_err(EngineError::Postgres)?;
    let start_time = crate::open::now_rfc3339();
    let start_lsn = pd::parse_lsn(&start_lsn_text).unwrap_or(0);
    let mut walk = PgWalk {
        writer,
        progress,
        root: &req.pgdata,
        fixed_size: repo.config().fixed_chunk_size as usize,
        cdc: repo.cdc_chunker(),
        checksums: facts.data_checksums,
        start_lsn,
        stats: SnapshotStats::default(),
        warnings: Vec::new(),
        failures: Vec::new(),
        pages_checked: 0,
        torn_pages: 0,
    };
    let mut root = walk.data_dir(&facts.tablespaces)?;
    let stop = session.backup_stop().map_err(EngineError::Postgres)?;
    let stop_time = crate::open::now_rfc3339();
    let owner = (pgdata_meta.uid(), pgdata_meta.gid());
    root.nodes
        .push(walk.bytes_node("backup_label", stop.labelfile.as_bytes(), owner)?);
    if !stop.spcmapfile.is_empty() {
        root.nodes
            .push(walk.bytes_node("tablespace_map", stop.spcmapfile.as_bytes(), owner)?);
    }
    let timeline = label_timeline(&stop.labelfile).unwrap_or(1);
    let stop_lsn = pd::parse_lsn(&stop.lsn).unwrap_or(start_lsn);
    let wal_files = pd::wal_file_names(timeline, start_lsn, stop_lsn, facts.wal_segment_size);
    let pg_wal = walk.wal_dir(&wal_files)?;
    root.nodes.retain(|n| n.name != "pg_wal");
    root.nodes.push(pg_wal);
    let tree = store_tree(writer, root)?;
    let meta = PhysicalMeta {
        pgdata: req.pgdata.display().to_string(),
        pgdata_uid: owner.0,
        pgdata_gid: owner.1,
        server_version: facts.version,
        server_version_num: facts.version_num,
        server_major: facts.version_num / 10000,
        system_identifier: facts.system_identifier,
        timeline,
        start_lsn: start_lsn_text,
        stop_lsn: stop.lsn,
        start_time,
        stop_time,
        wal_segment_size: facts.wal_segment_size,
        wal_files,
        data_checksums: facts.data_checksums,
        pages_checked: walk.pages_checked,
        torn_pages: walk.torn_pages,
        checksum_failures: walk.failures,
        tablespaces: facts.tablespaces,
    };
    Ok((tree, meta, walk.stats, walk.warnings))
}

/// `START TIMELINE: n` of a backup label.
pub fn label_timeline(label: &str) -> Option<u32> {
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE:"))
        .and_then(|v| v.trim().parse().ok())
}

struct PgWalk<'a> {
    writer: &'a BlobWriter,
    progress: &'a Progress,
    root: &'a Path,
    fixed_size: usize,
    cdc: lifeboat_repo::chunker::FastCdc,
    checksums: bool,
    start_lsn: u64,
    stats: SnapshotStats,
    warnings: Vec<String>,
    failures: Vec<ChecksumFailure>,
    pages_checked: u64,
    torn_pages: u64,
}

impl PgWalk<'_> {
    /// The root tree: the data directory (without `global`), the
    /// tablespaces, then `global` with `pg_control` read last.
    fn data_dir(&mut self, tablespaces: &[TablespaceRecord]) -> Result<Tree> {
        let root = self.root.to_path_buf();
        let mut tree = self.dir(&root, "", &["global"])?;
        let mut spc = Tree::default();
        for t in tablespaces {
            let path = PathBuf::from(&t.location);
            let meta = std::fs::metadata(&path).map_err(|e| unreadable(self.root, &path, e))?;
            let sub = self.dir(&path, &format!("pg_tblspc/{}", t.oid), &[])?;
            spc.nodes.push(self.dir_node(t.oid.as_bytes(), &meta, sub)?);
        }
        if !tablespaces.is_empty() {
            let meta = std::fs::metadata(&root).map_err(|e| unreadable(self.root, &root, e))?;
            tree.nodes
                .push(self.dir_node(TABLESPACES_DIR.as_bytes(), &meta, spc)?);
        }
        let global = root.join("global");
        let meta = std::fs::metadata(&global).map_err(|e| unreadable(self.root, &global, e))?;
        let mut sub = self.dir(&global, "global", &["pg_control"])?;
        let control = global.join("pg_control");
        let cmeta = std::fs::metadata(&control).map_err(|e| unreadable(self.root, &control, e))?;
        if let Some(n) = self.file(&control, "global/pg_control", b"pg_control", &cmeta)? {
            sub.nodes.push(n);
        }
        tree.nodes.push(self.dir_node(b"global", &meta, sub)?);
        Ok(tree)
    }

    /// The tree of directory `path` (`rel` from PGDATA), leaving out `skip`
    /// names at this level.
    fn dir(&mut self, path: &Path, rel: &str, skip: &[&str]) -> Result<Tree> {
        let mut names: Vec<std::ffi::OsString> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tree::default()),
            Err(e) => return Err(unreadable(self.root, path, e)),
        };
        names.sort();
        let unlogged = pd::unlogged_relations(names.iter().filter_map(|n| n.to_str()));
        let mut tree = Tree::default();
        for name in names {
            let name_str = name.to_string_lossy().into_owned();
            if skip.contains(&name_str.as_str()) || pd::is_unlogged_data(&name_str, &unlogged) {
                continue;
            }
            let child = path.join(&name);
            let child_rel = if rel.is_empty() {
                name_str.clone()
            } else {
                format!("{rel}/{name_str}")
            };
            let meta = match std::fs::symlink_metadata(&child) {
                Ok(m) => m,
                // Dropped while we walk: the WAL replay recreates nothing of it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(unreadable(self.root, &child, e)),
            };
            let ft = meta.file_type();
            match pd::exclusion(&child_rel, ft.is_dir()) {
                Exclusion::Skip => continue,
                Exclusion::KeepEmpty => {
                    let mut sub = Tree::default();
                    if child_rel == "pg_wal" {
                        sub.nodes
                            .push(self.dir_node(b"archive_status", &meta, Tree::default())?);
                    }
                    tree.nodes.push(self.dir_node(name.as_bytes(), &meta, sub)?);
                }
                Exclusion::Keep if ft.is_dir() => {
                    let sub = self.dir(&child, &child_rel, &[])?;
                    tree.nodes.push(self.dir_node(name.as_bytes(), &meta, sub)?);
                }
                Exclusion::Keep if ft.is_symlink() => {
                    let target =
                        std::fs::read_link(&child).map_err(|e| unreadable(self.root, &child, e))?;
                    let mut n = node(name.as_bytes(), NodeKind::Symlink, &meta);
                    n.set_target(target.as_os_str().as_bytes());
                    tree.nodes.push(n);
                }
                Exclusion::Keep if ft.is_file() => {
                    if let Some(n) = self.file(&child, &child_rel, name.as_bytes(), &meta)? {
                        tree.nodes.push(n);
                    }
                }
                Exclusion::Keep => {}
            }
        }
        Ok(tree)
    }

    fn dir_node(&mut self, name: &[u8], meta: &std::fs::Metadata, sub: Tree) -> Result<Node> {
        let mut n = node(name, NodeKind::Dir, meta);
        n.subtree = Some(store_tree(self.writer, sub)?);
        self.stats.dirs += 1;
        Ok(n)
    }

    /// A file node with its content stored; `None` when it vanished.
    fn file(
        &mut self,
        path: &Path,
        rel: &str,
        name: &[u8],
        meta: &std::fs::Metadata,
    ) -> Result<Option<Node>> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(self.root, path, e)),
        };
        let mut n = node(name, NodeKind::File, meta);
        let (content, size) = match pd::relation_segment(rel) {
            Some(segment) => self.relation_content(&mut file, rel, segment)?,
            None => store_stream(self.writer, &self.cdc, &mut file, self.progress)?,
        };
        n.content = content;
        n.size = size;
        self.stats.files += 1;
        self.stats.bytes += size;
        self.progress.add_file();
        Ok(Some(n))
    }

    /// A relation file in fixed chunks, its pages verified.
    fn relation_content(
        &mut self,
        file: &mut std::fs::File,
        rel: &str,
        segment: u64,
    ) -> Result<(Vec<Id>, u64)> {
        let io = |e| EngineError::Source(format!("reading {rel}: {e}"));
        let mut ids = Vec::new();
        let mut offset = 0u64;
        loop {
            let mut buf = vec![0u8; self.fixed_size];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]).map_err(io)? {
                    0 => break,
                    k => filled += k,
                }
            }
            buf.truncate(filled);
            if buf.is_empty() {
                break;
            }
            if self.checksums {
                self.verify_pages(file, rel, segment, offset, &mut buf)?;
            }
            offset += buf.len() as u64;
            self.progress.add_bytes(buf.len() as u64);
            ids.push(self.writer.add(BlobKind::Data, buf)?);
        }
        Ok((ids, offset))
    }

    /// Verify each whole page of `buf` (read at `offset`).
    fn verify_pages(
        &mut self,
        file: &std::fs::File,
        rel: &str,
        segment: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        for (i, page) in buf.chunks_exact_mut(pd::BLCKSZ).enumerate() {
            let block = offset / pd::BLCKSZ as u64 + i as u64;
            let blkno = segment * pd::RELSEG_SIZE + block;
            if pd::page_is_new(page) {
                continue;
            }
            self.pages_checked += 1;
            if pd::page_checksum(page, blkno) == pd::stored_checksum(page) {
                continue;
            }
            if pd::page_lsn(page) > self.start_lsn {
                self.torn_pages += 1;
                continue;
            }
            let mut again = vec![0u8; pd::BLCKSZ];
            let reread = file
                .read_exact_at(&mut again, block * pd::BLCKSZ as u64)
                .is_ok();
            if reread
                && (pd::page_lsn(&again) > self.start_lsn
                    || pd::page_checksum(&again, blkno) == pd::stored_checksum(&again))
            {
                page.copy_from_slice(&again);
                self.torn_pages += 1;
                continue;
            }
            self.warnings.push(format!(
                "page checksum mismatch in {rel}, block {block} (stored {:#06x}, computed {:#06x}): the page is damaged on the server; the backup keeps it as read (run pg_checksums or pg_amcheck on the server)",
                pd::stored_checksum(page),
                pd::page_checksum(page, blkno)
            ));
            self.failures.push(ChecksumFailure {
                file: rel.to_string(),
                block,
            });
        }
        Ok(())
    }

    /// A file node holding `bytes` (mode 0600, owned like PGDATA).
    fn bytes_node(&mut self, name: &str, bytes: &[u8], owner: (u32, u32)) -> Result<Node> {
        let mut n = Node::new(name.as_bytes(), NodeKind::File);
        n.mode = 0o600;
        n.uid = owner.0;
        n.gid = owner.1;
        n.mtime_ns = jiff::Timestamp::now().as_nanosecond() as i64;
        n.size = bytes.len() as u64;
        if !bytes.is_empty() {
            n.content = vec![self.writer.add(BlobKind::Data, bytes.to_vec())?];
        }
        self.stats.files += 1;
        self.stats.bytes += n.size;
        Ok(n)
    }

    /// `pg_wal/` with `archive_status/` and the WAL files of the backup.
    fn wal_dir(&mut self, names: &[String]) -> Result<Node> {
        let dir = self.root.join("pg_wal");
        let meta = std::fs::metadata(&dir).map_err(|e| unreadable(self.root, &dir, e))?;
        let mut tree = Tree::default();
        tree.nodes
            .push(self.dir_node(b"archive_status", &meta, Tree::default())?);
        for name in names {
            let path = dir.join(name);
            let fmeta = std::fs::metadata(&path).map_err(|e| missing_wal(name, &path, e))?;
            let n = self
                .file(&path, &format!("pg_wal/{name}"), name.as_bytes(), &fmeta)?
                .ok_or_else(|| missing_wal(name, &path, std::io::ErrorKind::NotFound.into()))?;
            tree.nodes.push(n);
        }
        self.dir_node(b"pg_wal", &meta, tree)
    }
}

fn missing_wal(name: &str, path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Source(format!(
        "WAL segment {name} that this backup needs to be consistent is gone from pg_wal ({}: {e}); the server recycled it before the backup could read it: raise wal_keep_size (or use a replication slot or WAL archiving) and back up again",
        path.display()
    ))
}

fn node(name: &[u8], kind: NodeKind, meta: &std::fs::Metadata) -> Node {
    let mut n = Node::new(name, kind);
    n.mode = meta.mode() & 0o7777;
    n.uid = meta.uid();
    n.gid = meta.gid();
    n.mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_comes_from_the_backup_label() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-03 09:00:00 UTC\nLABEL: x\nSTART TIMELINE: 3\n";
        assert_eq!(label_timeline(label), Some(3));
        assert_eq!(label_timeline("nothing"), None);
    }
}
