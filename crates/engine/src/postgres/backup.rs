//! Logical backup: `pg_dump -Fc -Z0` streamed through the archive inspector
//! into the repository (no temporary file), plus the globals.
//!
//! Steps: learn the server version and pick matching tools; open one held
//! session, refuse a transaction-mode pooler (judged by behaviour), export a
//! snapshot (`REPEATABLE READ READ ONLY`, `pg_export_snapshot()`) and record
//! table sizes and dependency facts in it; stream `pg_dump --snapshot` (so the
//! facts describe exactly what was dumped) into content-defined chunks (an
//! unchanged table produces the same chunks, so it costs nothing the next
//! time), with `--lock-wait-timeout` so it never queues behind an exclusive
//! lock forever; close the session; capture `pg_dumpall --globals-only`;
//! seal the snapshot. A repository error while the dump streams (a full disk)
//! is reported as such, not as the pg_dump failure it causes.

use super::{tools_for, LogicalMeta, TableRecord, DUMP_FILE, GLOBALS_FILE, KIND_LOGICAL};
use crate::backup_files::BackupOutcome;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::store::{seal_snapshot, snapshot_time, store_chunks, store_tree, stream_node};
use lifeboat_repo::chunker::{ChunkReader, CutHint};
use lifeboat_repo::{BlobKind, BlobWriter, Repository, Snapshot, SnapshotStats, Tree};
use lifeboat_sources::postgres::archive::ArchiveInspector;
use lifeboat_sources::postgres::child::{self, start_dump};
use lifeboat_sources::postgres::dump::{filter_globals, DumpRun};
use lifeboat_sources::postgres::session::{is_transaction_pooler, Session};
use lifeboat_sources::postgres::{catalog, platform, ClientTools, DumpOptions, PgError, PgTarget};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// What to back up.
pub struct PgLogicalBackup {
    /// Source name.
    pub source: String,
    /// Connection target (database included).
    pub target: PgTarget,
    /// Directory with client tools, if configured.
    pub bin_dir: Option<PathBuf>,
    /// pg_dump selection and profile.
    pub dump: DumpOptions,
    /// Capture roles and tablespaces.
    pub globals: bool,
    /// Keep role passwords in the globals.
    pub role_passwords: bool,
    /// How long to wait for a lock (catalog queries and each table pg_dump locks).
    pub lock_wait_timeout: std::time::Duration,
    /// Snapshot time (RFC 3339) instead of now.
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Default for [`PgLogicalBackup::lock_wait_timeout`].
pub const DEFAULT_LOCK_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Run a logical backup.
pub async fn backup_logical(
    repo: Arc<Repository>,
    req: PgLogicalBackup,
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
        .find(|(_, s)| s.source == req.source && s.kind == KIND_LOGICAL);
    let writer = BlobWriter::new(repo.clone());
    let mtime = time
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_nanosecond() as i64)
        .unwrap_or(0);
    let (source, tags) = (req.source.clone(), req.tags.clone());
    let repo_for_dump = repo.clone();
    let (writer, tree, meta, mut stats, warnings) =
        tokio::task::spawn_blocking(move || -> Result<_> {
            let mut warnings = Vec::new();
            let (tools, version_num) = tools_for(&req.target, req.bin_dir.as_deref())?;
            progress.set_phase("reading catalog");
            let (mut session, snapshot) = snapshot_session(&tools, &req)?;
            let table_stats = catalog::table_stats_in(&mut session)?;
            let dependencies = catalog::dependency_info_in(&mut session)?;
            let database_size = catalog::database_size_in(&mut session)?;
            let platform = platform::platform_dependencies(&mut session, &req.dump.profile)?;

            progress.set_phase("dumping");
            let run = DumpRun {
                snapshot: Some(snapshot),
                lock_wait_timeout: Some(req.lock_wait_timeout),
            };
            let dumped = dump_into(&writer, &repo_for_dump, &tools, &req, &run, &progress);
            // The snapshot must stay valid until pg_dump has finished with it.
            session.close();
            let (content, dump_bytes, archive) = dumped?;
            let mut tree = Tree::default();
            tree.nodes
                .push(stream_node(DUMP_FILE, content, dump_bytes, mtime));
            let globals = if req.globals {
                match capture_globals(&tools, &req) {
                    Ok(sql) => {
                        let size = sql.len() as u64;
                        let id = writer.add(BlobKind::Data, sql.into_bytes())?;
                        tree.nodes
                            .push(stream_node(GLOBALS_FILE, vec![id], size, mtime));
                        true
                    }
                    Err(e) => {
                        warnings.push(format!("globals (roles, tablespaces) not captured: {e}"));
                        false
                    }
                }
            } else {
                false
            };
            let tables = table_stats
                .iter()
                .map(|t| TableRecord {
                    name: t.qualified(),
                    kind: t.kind.clone(),
                    rows: archive.table_rows.get(&t.qualified()).copied(),
                    estimate: t.row_estimate,
                    bytes: t.bytes,
                })
                .collect();
            let meta = LogicalMeta {
                database: req.target.database().unwrap_or_default().to_string(),
                server_version: archive.server_version.clone(),
                server_version_num: version_num,
                server_major: catalog::major_of(version_num),
                pg_dump_version: tools.version.clone(),
                pg_dump_major: tools.major,
                options: req.dump.clone(),
                dump_bytes,
                database_size,
                globals,
                archive,
                tables,
                dependencies,
                platform,
            };
            let stats = SnapshotStats {
                files: tree.nodes.len() as u64,
                bytes: tree.nodes.iter().map(|n| n.size).sum(),
                ..Default::default()
            };
            let tree_id = store_tree(&writer, tree)?;
            Ok((writer, tree_id, meta, stats, warnings))
        })
        .await
        .expect("backup thread panicked")?;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let snap = Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time,
        host: crate::open::hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        source,
        kind: KIND_LOGICAL,
        paths: vec![meta.database.clone()],
        tags,
        tree,
        parent: parent.map(|(id, _)| id),
        stats,
        meta: serde_json::to_value(&meta).expect("meta serializes"),
    };
    let (id, snapshot) = seal_snapshot(&repo, writer, snap).await?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings,
    })
}

/// Feeds everything read to the archive inspector on its way to the repository.
struct Inspecting<'a, R> {
    inner: R,
    inspector: &'a mut ArchiveInspector,
    /// Set to where the data starts once the TOC has parsed.
    toc_end: CutHint,
}

impl<R: Read> Read for Inspecting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inspector.feed(&buf[..n]);
        if self.toc_end.get().is_none() {
            if let Some(end) = self.inspector.toc_end() {
                self.toc_end.set(end);
            }
        }
        Ok(n)
    }
}

/// Opens the session the backup holds, refuses a transaction pooler, sets the
/// lock timeout and exports a snapshot; returns the session (inside the
/// snapshot's transaction) and the snapshot id for `pg_dump --snapshot`.
fn snapshot_session(tools: &ClientTools, req: &PgLogicalBackup) -> Result<(Session, String)> {
    let mut session = Session::open(tools, &req.target)?;
    if is_transaction_pooler(tools, &req.target, &mut session)? {
        return Err(PgError::TransactionPooler {
            address: req.target.address(),
        }
        .into());
    }
    let ms = req.lock_wait_timeout.as_millis().max(1);
    let rows = session.query(&format!(
        "SET lock_timeout = {ms};\nBEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();"
    ))?;
    let id = rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .ok_or_else(|| EngineError::Source("pg_export_snapshot() returned nothing".into()))?;
    Ok((session, id))
}

fn dump_into(
    writer: &BlobWriter,
    repo: &Repository,
    tools: &ClientTools,
    req: &PgLogicalBackup,
    run: &DumpRun,
    progress: &Progress,
) -> Result<(
    Vec<lifeboat_repo::Id>,
    u64,
    lifeboat_sources::postgres::archive::ArchiveSummary,
)> {
    let mut child = start_dump(tools, &req.target, &req.dump, run)?;
    let stdout = child
        .stdout()
        .expect("pg_dump writes the archive to stdout");
    let mut inspector = ArchiveInspector::new();
    let chunker = repo.cdc_chunker();
    // A cut where the data starts: the header and TOC (with the dump's
    // timestamp) change in every backup, the data that follows need not.
    let toc_end = CutHint::new();
    let chunks = ChunkReader::new(
        Inspecting {
            inner: stdout,
            inspector: &mut inspector,
            toc_end: toc_end.clone(),
        },
        &chunker,
    )
    .with_cut_hint(toc_end);
    let stored = store_chunks(writer, chunks, progress);
    if stored.is_err() {
        child.kill();
    }
    let finished = child.finish();
    // The repository failing (e.g. a full disk) is why pg_dump was stopped:
    // report that, not the broken pipe it caused.
    let (content, size) = stored?;
    finished?;
    let archive = inspector.finish().map_err(|e| {
        EngineError::Source(format!(
            "pg_dump output is not a complete custom-format archive: {e}"
        ))
    })?;
    Ok((content, size, archive))
}

fn capture_globals(
    tools: &lifeboat_sources::postgres::ClientTools,
    req: &PgLogicalBackup,
) -> Result<String> {
    let sql = child::capture_globals(tools, &req.target, req.role_passwords)?;
    Ok(filter_globals(&sql, &req.dump.profile))
}
