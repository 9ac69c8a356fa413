//! The backup use case: a configured source by name, or paths given ad hoc.
//!
//! [`run`] merges the source's config with the request (request flags add
//! include/exclude globs, and replace the PostgreSQL selection when given),
//! opens the repository, takes the backup lock and runs the kind's backup
//! (files, PostgreSQL logical, or a `command` source's output). The report
//! carries the profile's opt-out notes (a Supabase source told not to keep
//! auth or storage data says so).

use crate::config::{resolve_secret, SourceConfig, SourceKind};
use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::store::run_locked;
use crate::{backup_command, backup_files, postgres};
use lifeboat_repo::{Id, Repository, Snapshot};
use lifeboat_sources::env::Redactor;
use lifeboat_sources::files::Selection;
use lifeboat_sources::postgres::{DumpOptions, PgTarget, Profile};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// PostgreSQL selection given with a request (replaces the config's when set).
#[derive(Debug, Clone, Default)]
pub struct PgSelection {
    /// Only the schema.
    pub schema_only: bool,
    /// Only the data.
    pub data_only: bool,
    /// Only these tables.
    pub tables: Vec<String>,
    /// Only these schemas.
    pub schemas: Vec<String>,
}

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// One configured source name, or paths for an ad-hoc files backup.
    pub targets: Vec<String>,
    /// Backup kind for database sources (`logical`).
    pub kind: Option<String>,
    /// Snapshot time instead of now (RFC 3339).
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Extra exclude globs (files).
    pub excludes: Vec<String>,
    /// Extra include globs (files).
    pub includes: Vec<String>,
    /// Also capture the environment (files).
    pub env: bool,
    /// Store secrets unredacted.
    pub no_redact: bool,
    /// Source name of an ad-hoc backup.
    pub source_name: String,
    /// PostgreSQL selection.
    pub pg: PgSelection,
    /// Tables to leave out (PostgreSQL).
    pub exclude_tables: Vec<String>,
    /// Schemas to leave out (PostgreSQL).
    pub exclude_schemas: Vec<String>,
}

/// The result of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// Snapshot id.
    pub id: Id,
    /// The snapshot written.
    pub snapshot: Snapshot,
    /// Entries skipped or changed while read; non-empty = incomplete backup.
    pub warnings: Vec<String>,
    /// What the source's profile deliberately leaves out (Supabase
    /// opt-outs); not warnings: the backup is complete as configured.
    pub notes: Vec<String>,
}

impl BackupReport {
    /// Whether everything was stored as it was (no warnings).
    pub fn complete(&self) -> bool {
        self.warnings.is_empty()
    }
}

/// Run a backup, counting in `progress`.
pub async fn run(ctx: &Ctx, req: BackupRequest, progress: Arc<Progress>) -> Result<BackupReport> {
    let source = match (&ctx.config, req.targets.as_slice()) {
        (Some(cfg), [name]) if cfg.sources.iter().any(|s| &s.name == name) => {
            Some(cfg.source(name)?.clone())
        }
        _ => None,
    };
    let Some(src) = source else {
        let files = adhoc_files(&req)?;
        return locked(ctx, progress, |r, p| {
            backup_files::backup_files(r, files, p)
        })
        .await;
    };
    match src.kind {
        SourceKind::Files => {
            let files = files_from_config(ctx, &src, &req)?;
            locked(ctx, progress, |r, p| {
                backup_files::backup_files(r, files, p)
            })
            .await
        }
        SourceKind::Postgres if req.kind.as_deref() == Some("physical") => {
            let pg = physical_from_config(ctx, &src, &req)?;
            locked(ctx, progress, |r, p| postgres::backup_physical(r, pg, p)).await
        }
        SourceKind::Postgres => {
            let pg = postgres_from_config(ctx, &src, &req)?;
            let notes = pg.dump.profile.opt_out_notes();
            let mut report =
                locked(ctx, progress, |r, p| postgres::backup_logical(r, pg, p)).await?;
            report.notes = notes;
            Ok(report)
        }
        SourceKind::Command => {
            let cfg = ctx.config.as_ref().expect("config present");
            let cmd = backup_command::CommandBackup::from_config(
                cfg,
                &src,
                !req.no_redact,
                req.time.clone(),
                req.tags.clone(),
            )?;
            locked(ctx, progress, |r, p| {
                backup_command::backup_command(r, cmd, p)
            })
            .await
        }
        SourceKind::Clickhouse => {
            let ch = clickhouse_from_config(&src, &req)?;
            let mut report = locked(ctx, progress, |r, p| {
                crate::clickhouse::backup_clickhouse(r, ch, p)
            })
            .await?;
            if let Ok(meta) = crate::clickhouse::ClickhouseMeta::of(&report.snapshot) {
                report.notes = meta.notes;
            }
            Ok(report)
        }
    }
}

/// A backup of a `clickhouse` source: its server, databases and table globs
/// (`-t` / `--exclude-table` replace the config's).
fn clickhouse_from_config(
    src: &SourceConfig,
    req: &BackupRequest,
) -> Result<crate::clickhouse::ChBackup> {
    let pick = |flag: &Vec<String>, cfg: &Vec<String>| {
        if flag.is_empty() {
            cfg.clone()
        } else {
            flag.clone()
        }
    };
    Ok(crate::clickhouse::ChBackup {
        source: src.name.clone(),
        target: crate::clickhouse::ChTarget::from_source(src, None)?,
        databases: src.databases.clone(),
        include: pick(&req.pg.tables, &src.tables),
        exclude: pick(&req.exclude_tables, &src.exclude_tables),
        time: req.time.clone(),
        tags: req.tags.clone(),
    })
}

fn adhoc_files(req: &BackupRequest) -> Result<backup_files::FilesBackup> {
    Ok(backup_files::FilesBackup {
        source: req.source_name.clone(),
        paths: req.targets.iter().map(PathBuf::from).collect(),
        selection: Selection::new(&req.includes, &req.excludes)?,
        redactor: Redactor::new(!req.no_redact, &[], &[]),
        capture_env: req.env,
        time: req.time.clone(),
        tags: req.tags.clone(),
    })
}

fn files_from_config(
    ctx: &Ctx,
    src: &SourceConfig,
    req: &BackupRequest,
) -> Result<backup_files::FilesBackup> {
    let cfg = ctx.config.as_ref().expect("config present");
    let includes = [src.include.as_slice(), &req.includes].concat();
    let excludes = [src.exclude.as_slice(), &req.excludes].concat();
    Ok(backup_files::FilesBackup {
        source: src.name.clone(),
        paths: src.paths.iter().map(|p| cfg.path(p)).collect(),
        selection: Selection::new(&includes, &excludes)?,
        redactor: Redactor::new(
            src.redact && !req.no_redact,
            &src.redact_names,
            &src.keep_names,
        ),
        capture_env: src.env || req.env,
        time: req.time.clone(),
        tags: req.tags.clone(),
    })
}

/// The dump profile named in a source's config.
pub(crate) fn profile(src: &SourceConfig) -> Result<Profile> {
    match src.profile.as_deref() {
        None | Some("plain") | Some("postgres") => Ok(Profile::Plain),
        Some("supabase") => Ok(Profile::Supabase {
            keep_auth_data: src.keeps_auth_data(),
            keep_storage_data: src.keeps_storage_data(),
        }),
        Some(other) => Err(EngineError::Other(format!(
            "source {:?}: unknown profile {other:?} (expected \"supabase\")",
            src.name
        ))),
    }
}

/// The dump options of a source: config defaults, replaced by any request flag given.
fn dump_options(src: &SourceConfig, req: &BackupRequest) -> Result<DumpOptions> {
    let pick = |flag: &Vec<String>, cfg: &Vec<String>| {
        if flag.is_empty() {
            cfg.clone()
        } else {
            flag.clone()
        }
    };
    let opts = DumpOptions {
        schema_only: req.pg.schema_only || (src.schema_only && !req.pg.data_only),
        data_only: req.pg.data_only || (src.data_only && !req.pg.schema_only),
        tables: pick(&req.pg.tables, &src.tables),
        schemas: pick(&req.pg.schemas, &src.schemas),
        exclude_tables: pick(&req.exclude_tables, &src.exclude_tables),
        exclude_schemas: pick(&req.exclude_schemas, &src.exclude_schemas),
        exclude_table_data: Vec::new(),
        profile: profile(src)?,
    };
    if opts.schema_only && opts.data_only {
        return Err(EngineError::Other(
            "--schema-only and --data-only exclude each other".into(),
        ));
    }
    Ok(opts)
}

fn postgres_from_config(
    ctx: &Ctx,
    src: &SourceConfig,
    req: &BackupRequest,
) -> Result<postgres::PgLogicalBackup> {
    match req.kind.as_deref() {
        None | Some("logical") => {}
        Some(other) => {
            return Err(EngineError::Config(format!(
                "--kind {other}: expected logical or physical"
            )))
        }
    }
    let target = pg_source_target(src)?;
    Ok(postgres::PgLogicalBackup {
        source: src.name.clone(),
        target,
        bin_dir: ctx.source_bin_dir(&src.name),
        dump: dump_options(src, req)?,
        globals: src.globals,
        role_passwords: src.role_passwords,
        lock_wait_timeout: src
            .lock_wait_timeout
            .map(std::time::Duration::from_secs)
            .unwrap_or(postgres::DEFAULT_LOCK_WAIT_TIMEOUT),
        time: req.time.clone(),
        tags: req.tags.clone(),
    })
}

/// A physical backup of a `postgres` source with `pgdata`.
fn physical_from_config(
    ctx: &Ctx,
    src: &SourceConfig,
    req: &BackupRequest,
) -> Result<postgres::PgPhysicalBackup> {
    let cfg = ctx.config.as_ref().expect("config present");
    let pgdata = src.pgdata.as_deref().ok_or_else(|| {
        EngineError::Config(format!(
            "source {:?} has no `pgdata`: a physical backup reads the data directory, so set pgdata = \"/var/lib/postgresql/15/main\" (the server's data_directory) in the source",
            src.name
        ))
    })?;
    Ok(postgres::PgPhysicalBackup {
        source: src.name.clone(),
        target: pg_source_target(src)?,
        pgdata: cfg.path(pgdata),
        bin_dir: ctx.source_bin_dir(&src.name),
        time: req.time.clone(),
        tags: req.tags.clone(),
    })
}

/// The database a `postgres` source names (its `url`, secrets resolved).
pub(crate) fn pg_source_target(src: &SourceConfig) -> Result<PgTarget> {
    let url = resolve_secret(src.url.as_deref().ok_or_else(|| {
        EngineError::Config(format!(
            "source {:?} is not a postgres source (no url)",
            src.name
        ))
    })?)?;
    PgTarget::parse(&url)
        .map_err(|e| EngineError::Config(format!("source {:?}: invalid url: {e}", src.name)))
}

/// Open the repository without its index (the index is loaded under the
/// backup lock, in `run_locked`) and run `backup` holding the lock.
async fn locked<F, Fut>(ctx: &Ctx, progress: Arc<Progress>, backup: F) -> Result<BackupReport>
where
    F: FnOnce(Arc<Repository>, Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<backup_files::BackupOutcome>>,
{
    let repo = ctx.repo.open_without_index().await?;
    let o = run_locked(repo, |repo| backup(repo, progress)).await?;
    Ok(BackupReport {
        id: o.id,
        snapshot: o.snapshot,
        warnings: o.warnings,
        notes: Vec::new(),
    })
}
