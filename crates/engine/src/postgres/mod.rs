//! PostgreSQL use-cases: logical backup, restore, export, and test restores;
//! physical base backups and their restore ([`backup_physical`],
//! [`restore_physical`]).
//!
//! A logical snapshot's root tree holds `database.dump` (a genuine
//! `pg_dump -Fc -Z0` archive, compressed by the repository instead) and,
//! when captured, `globals.sql` (`pg_dumpall --globals-only`, filtered by
//! the profile). The snapshot's `meta` ([`LogicalMeta`]) records the server,
//! the options, exact row counts per table (read from the archive as it
//! streamed) and the dependency facts partial restores need.

mod backup;
mod export;
mod physical;
mod physical_restore;
mod pitr;
mod restore;
mod restore_fast;
mod restore_test;

pub use backup::{backup_logical, PgLogicalBackup, DEFAULT_LOCK_WAIT_TIMEOUT};
pub use export::{export_dump, ExportFormat};
pub use physical::{
    backup_physical, label_timeline, ChecksumFailure, PgPhysicalBackup, PhysicalMeta,
    TablespaceRecord, KIND_PHYSICAL, TABLESPACES_DIR,
};
pub use physical_restore::{
    parse_tablespace_map, require_empty, restore_physical, PgPhysicalRestore,
};
pub use pitr::{
    choose_base_backup, start_and_wait, write_recovery_config, RecoveryReport, RecoveryRequest,
};
pub use restore::{restore_logical, PgLogicalRestore, PgRestoreOutcome};
pub use restore_test::{restore_test, verifications, verifications_checked, RESTORE_ROLE};

use crate::error::{EngineError, Result};
use lifeboat_repo::{Id, Repository, Snapshot, SnapshotKind};
use lifeboat_sources::postgres::archive::ArchiveSummary;
use lifeboat_sources::postgres::platform::PlatformDeps;
use lifeboat_sources::postgres::{catalog, ClientTools, DependencyInfo, DumpOptions, PgTarget};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Snapshot kind of logical backups.
pub const KIND_LOGICAL: SnapshotKind = SnapshotKind::PostgresLogical;
/// The archive's name in the snapshot tree.
pub const DUMP_FILE: &str = "database.dump";
/// The globals' name in the snapshot tree.
pub const GLOBALS_FILE: &str = "globals.sql";

/// One table as recorded at backup time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableRecord {
    /// `schema.name`.
    pub name: String,
    /// pg_class relkind as text (`r`, `p`, `m`, ...).
    pub kind: String,
    /// Exact rows in the dump (from its COPY data), when it has data.
    pub rows: Option<u64>,
    /// Planner estimate at backup time (-1 = unknown).
    pub estimate: i64,
    /// On-disk size at backup time.
    pub bytes: i64,
}

/// `meta` of a logical snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogicalMeta {
    /// Database dumped.
    pub database: String,
    /// Server version string.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// Server major version.
    pub server_major: u32,
    /// pg_dump version used.
    pub pg_dump_version: String,
    /// pg_dump major version used (restores need pg_restore at least this new).
    pub pg_dump_major: u32,
    /// Dump options (tables, schemas, profile, ...).
    pub options: DumpOptions,
    /// Size of the archive in bytes.
    pub dump_bytes: u64,
    /// `pg_database_size` at backup time.
    pub database_size: i64,
    /// Whether `globals.sql` was captured.
    pub globals: bool,
    /// What the archive inspector read.
    pub archive: ArchiveSummary,
    /// Tables with rows and sizes.
    pub tables: Vec<TableRecord>,
    /// Indexes, foreign keys, sequences per table (for partial restores).
    pub dependencies: DependencyInfo,
    /// With a platform profile (`supabase`): the platform schemas, extension
    /// placements and reserved roles the dump depends on. Absent for plain
    /// PostgreSQL and in snapshots written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformDeps>,
}

impl LogicalMeta {
    /// Read the meta of a logical snapshot.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        if snap.kind != KIND_LOGICAL {
            return Err(EngineError::Config(format!(
                "snapshot of {:?} is a {} snapshot, not a PostgreSQL logical backup",
                snap.source, snap.kind
            )));
        }
        crate::meta::parse(snap)
    }
}

/// Connect once with any client tools to learn the server's version, then
/// pick tools that fit it. Returns the tools and `server_version_num`.
/// Any psql can read the version, so the probe uses the system's tools
/// first; the configured `bin_dir` is then required strictly.
pub fn tools_for(target: &PgTarget, bin_dir: Option<&Path>) -> Result<(ClientTools, u32)> {
    let probe = ClientTools::any(None).or_else(|_| ClientTools::any(bin_dir))?;
    let version_num = catalog::server_version_num(&probe, target)?;
    let tools = ClientTools::find(catalog::major_of(version_num), bin_dir)?;
    Ok((tools, version_num))
}

/// Write the content of `ids` to `out` in order, with read-ahead, counting
/// bytes in `progress`. The outer error is the repository's (damaged or
/// missing data); the inner one is `out`'s, so a caller can treat a consumer
/// that stopped reading (pg_restore exiting) differently from a failed disk.
pub(crate) fn write_blobs(
    repo: &std::sync::Arc<Repository>,
    ids: &[Id],
    out: &mut dyn std::io::Write,
    progress: Option<&crate::progress::Progress>,
) -> Result<std::io::Result<u64>> {
    let mut reader = lifeboat_repo::ContentReader::new(repo.clone(), ids.to_vec(), 2);
    let mut n = 0u64;
    while let Some(blob) = reader.next_blob()? {
        if let Err(e) = out.write_all(&blob) {
            return Ok(Err(e));
        }
        n += blob.len() as u64;
        if let Some(p) = progress {
            p.add_bytes(blob.len() as u64);
        }
    }
    Ok(out.flush().map(|()| n))
}

/// The content ids of a file in a snapshot's root tree.
pub async fn file_content(
    repo: &Repository,
    snap: &Snapshot,
    name: &str,
) -> Result<Option<(Vec<Id>, u64)>> {
    let root = repo.load_tree(&snap.tree).await?;
    Ok(root
        .get(name.as_bytes())
        .map(|n| (n.content.clone(), n.size)))
}
