//! The restore use case for every snapshot kind: [`plan`], then [`execute`].
//!
//! [`plan`] resolves the snapshot (`latest` or an id prefix, optionally
//! skipping damaged snapshots) and the target: a directory for a files
//! snapshot, a PostgreSQL URL (or `env:NAME`) for a logical one. A files plan
//! lists what it will create and what it would overwrite, so a dry run can
//! show it; [`execute`] carries it out (a PostgreSQL dry run runs every check
//! and changes nothing).

use crate::backup::PgSelection;
use crate::clickhouse::{
    restore_clickhouse, ChRestore, ChRestoreOutcome, ChTarget, KIND_CLICKHOUSE,
};
use crate::config::resolve_secret;
use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::postgres::{
    choose_base_backup, parse_tablespace_map, restore_logical, restore_physical, start_and_wait,
    write_recovery_config, PgLogicalRestore, PgPhysicalRestore, PgRestoreOutcome, PhysicalMeta,
    RecoveryReport, RecoveryRequest, KIND_PHYSICAL,
};
use crate::progress::Progress;
use crate::restore_files::{self, RestoreSummary};
use lifeboat_repo::{Id, Repository, Snapshot};
use lifeboat_sources::postgres::{PgTarget, RestoreOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to restore, and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// With `latest`: the latest of this source.
    pub source: Option<String>,
    /// A directory, or a PostgreSQL URL (`postgres://...`, `env:NAME`).
    pub to: String,
    /// Only these paths inside a files snapshot.
    pub paths: Vec<String>,
    /// Overwrite existing files / restore into a non-empty database.
    pub force: bool,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// PostgreSQL selection.
    pub pg: PgSelection,
    /// Drop restored objects before recreating them (PostgreSQL).
    pub clean: bool,
    /// Parallel data streams and index builds of a PostgreSQL restore
    /// (0 = automatic: the cores, at most 4; 1 = one streaming pg_restore).
    pub jobs: u32,
    /// Apply the captured roles first (PostgreSQL).
    pub roles: bool,
    /// With `latest`: use the newest readable snapshot when some cannot be read.
    pub skip_damaged: bool,
    /// Physical restores: tablespace moves, `OLD=NEW`.
    pub tablespace_map: Vec<String>,
    /// ClickHouse restores: only this database.
    pub database: Option<String>,
    /// ClickHouse restores: new name of the one database or table restored.
    pub rename: Option<String>,
    /// ClickHouse restores: only these partitions of the one table.
    pub partitions: Vec<String>,
    /// ClickHouse restores: replace the data of tables that hold rows.
    pub replace: bool,
    /// Physical restores: point-in-time recovery (target, action, `--start`).
    pub recovery: RecoveryRequest,
}

/// Whether `to` names a PostgreSQL target rather than a directory.
pub fn is_postgres_target(to: &str) -> bool {
    to.starts_with("postgres://") || to.starts_with("postgresql://") || to.starts_with("env:")
}

/// A physical restore and its recovery.
struct PhysicalPlan {
    req: PgPhysicalRestore,
    recovery: RecoveryRequest,
    settings: Vec<String>,
    bin_dir: Option<PathBuf>,
}

enum Target {
    Clickhouse(Box<ChRestore>),
    Files(restore_files::RestorePlan),
    Physical(Box<PhysicalPlan>),
    Postgres(Box<PgLogicalRestore>),
}

/// A planned restore.
pub struct RestorePlan {
    /// Snapshot restored.
    pub id: Id,
    /// Its record.
    pub snapshot: Snapshot,
    /// Snapshots that could not be read and were skipped (`skip_damaged`).
    pub skipped_damaged: Vec<Id>,
    /// Plan only.
    pub dry_run: bool,
    force: bool,
    repo: Arc<Repository>,
    target: Target,
}

/// Plan a restore.
pub async fn plan(ctx: &Ctx, req: RestoreRequest) -> Result<RestorePlan> {
    let repo = ctx.repo.open().await?;
    let (mut found, skipped) = repo
        .find_snapshot_with(&req.snapshot, req.source.as_deref(), req.skip_damaged)
        .await?;
    if found.1.kind == KIND_PHYSICAL && req.recovery.wanted() {
        req.recovery.validate()?;
        let named = req.snapshot != "latest";
        found = choose_base_backup(&repo, found, named, &req.recovery).await?;
    }
    let (id, snapshot) = found;
    if snapshot.kind != KIND_PHYSICAL && req.recovery.wanted() {
        return Err(EngineError::Config(format!(
            "--target-*, --target-action and --start apply to physical snapshots only; {} is a {} snapshot",
            id.short(),
            snapshot.kind
        )));
    }
    let target = if snapshot.kind == KIND_CLICKHOUSE {
        Target::Clickhouse(Box::new(clickhouse_request(ctx, &snapshot, &req)?))
    } else if snapshot.kind == KIND_PHYSICAL {
        Target::Physical(Box::new(physical_plan(ctx, &snapshot, &req)?))
    } else if is_postgres_target(&req.to) {
        Target::Postgres(Box::new(postgres_request(ctx, &snapshot, &req)?))
    } else {
        let to = PathBuf::from(&req.to);
        Target::Files(restore_files::plan(&repo, &id, &snapshot, &to, &req.paths).await?)
    };
    Ok(RestorePlan {
        id,
        snapshot,
        skipped_damaged: skipped,
        dry_run: req.dry_run,
        force: req.force,
        repo,
        target,
    })
}

/// A ClickHouse restore: `--to` is the server (`http(s)://...`, or
/// `env:NAME`); the credentials are the snapshot's source's in the config.
fn clickhouse_request(ctx: &Ctx, snap: &Snapshot, req: &RestoreRequest) -> Result<ChRestore> {
    let src = ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == snap.source))
        .cloned()
        .unwrap_or_else(|| default_clickhouse_source(&snap.source));
    let url = resolve_secret(&req.to)?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(EngineError::Config(format!(
            "a ClickHouse snapshot restores into a ClickHouse server: pass --to http://host:8123 (got {:?})",
            req.to
        )));
    }
    if req.force || req.clean || !req.paths.is_empty() || req.pg.schema_only || req.pg.data_only {
        return Err(EngineError::Config(
            "--force, --clean, --path, --schema-only and --data-only do not apply to a ClickHouse snapshot (use --replace to replace the data of tables that hold rows)".into(),
        ));
    }
    Ok(ChRestore {
        target: Some(ChTarget::from_source(&src, Some(&url))?),
        database: req.database.clone(),
        tables: req.pg.tables.clone(),
        rename: req.rename.clone(),
        partitions: req.partitions.clone(),
        replace: req.replace,
        dry_run: req.dry_run,
        database_map: None,
    })
}

/// Credentials when the config does not name the snapshot's source:
/// the `default` user without a password.
fn default_clickhouse_source(name: &str) -> crate::config::SourceConfig {
    toml::from_str(&format!(
        "name = {name:?}\nkind = \"clickhouse\"\nurl = \"http://127.0.0.1:8123\"\n"
    ))
    .expect("a minimal clickhouse source parses")
}

fn physical_plan(ctx: &Ctx, snap: &Snapshot, req: &RestoreRequest) -> Result<PhysicalPlan> {
    let settings = if req.recovery.wanted() {
        req.recovery
            .settings(&PhysicalMeta::of(snap)?.system_identifier)?
    } else {
        Vec::new()
    };
    Ok(PhysicalPlan {
        req: physical_request(snap, req)?,
        recovery: req.recovery.clone(),
        settings,
        bin_dir: ctx.source_bin_dir(&snap.source),
    })
}

fn physical_request(snap: &Snapshot, req: &RestoreRequest) -> Result<PgPhysicalRestore> {
    if is_postgres_target(&req.to) {
        return Err(EngineError::Config(
            "a physical snapshot restores into a directory (a new data directory): pass --to DIR"
                .into(),
        ));
    }
    if req.dry_run || req.force || !req.paths.is_empty() {
        return Err(EngineError::Config(
            "--dry-run, --force and --path do not apply to a physical snapshot: it restores whole into an empty directory".into(),
        ));
    }
    let to =
        std::path::absolute(&req.to).map_err(EngineError::io(format!("resolving {}", req.to)))?;
    let r = PgPhysicalRestore {
        to,
        tablespace_map: parse_tablespace_map(&req.tablespace_map)?,
    };
    r.check(&PhysicalMeta::of(snap)?)?;
    Ok(r)
}

fn postgres_request(ctx: &Ctx, snap: &Snapshot, req: &RestoreRequest) -> Result<PgLogicalRestore> {
    let url = resolve_secret(&req.to)?;
    let target =
        PgTarget::parse(&url).map_err(|e| EngineError::Config(format!("invalid --to URL: {e}")))?;
    Ok(PgLogicalRestore {
        target,
        bin_dir: ctx.source_bin_dir(&snap.source),
        opts: RestoreOptions {
            tables: req.pg.tables.clone(),
            schemas: req.pg.schemas.clone(),
            schema_only: req.pg.schema_only,
            data_only: req.pg.data_only,
            clean: req.clean,
            jobs: req.jobs,
            ..RestoreOptions::default()
        },
        force: req.force,
        roles: req.roles,
        dry_run: req.dry_run,
    })
}

/// What a files plan will do (for a dry run).
pub struct FilesPreview<'a> {
    plan: &'a restore_files::RestorePlan,
    repo: &'a Repository,
}

impl FilesPreview<'_> {
    /// The target directory.
    pub fn target(&self) -> &Path {
        &self.plan.target
    }

    /// Counts of what the plan creates.
    pub fn summary(&self) -> RestoreSummary {
        self.plan.summary()
    }

    /// Existing paths the restore would overwrite.
    pub fn conflicts(&self) -> &[PathBuf] {
        &self.plan.conflicts
    }

    /// Whether the plan completes an unfinished restore of the same snapshot.
    pub fn resumes(&self) -> bool {
        self.plan.resumes()
    }

    /// Call `f` with every entry to create (relative to the target), parents
    /// first, streaming: one directory per level in memory.
    pub async fn for_each(&self, mut f: impl FnMut(&Path)) -> Result<()> {
        self.plan.for_each(self.repo, |rel, _| f(rel)).await
    }
}

impl RestorePlan {
    /// The files part of the plan; `None` for a PostgreSQL restore.
    pub fn files(&self) -> Option<FilesPreview<'_>> {
        match &self.target {
            Target::Files(plan) => Some(FilesPreview {
                plan,
                repo: &self.repo,
            }),
            Target::Postgres(_) | Target::Physical(_) | Target::Clickhouse(_) => None,
        }
    }

    /// Counters for executing this plan, its total already known for files.
    pub fn progress(&self) -> Arc<Progress> {
        let total = self.files().map_or(0, |f| f.summary().bytes);
        Arc::new(Progress::new(total, "restoring"))
    }

    /// The PostgreSQL target (redacted when displayed); `None` for files.
    pub fn postgres_target(&self) -> Option<&PgTarget> {
        match &self.target {
            Target::Postgres(r) => Some(&r.target),
            Target::Files(_) | Target::Physical(_) | Target::Clickhouse(_) => None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RestoreReport {
    /// A files restore.
    Files {
        /// Snapshot restored.
        snapshot: Id,
        /// Target directory.
        target: PathBuf,
        /// What was written.
        summary: RestoreSummary,
        /// Wall time.
        seconds: f64,
    },
    /// A ClickHouse restore (or its dry run: `outcome.planned`).
    Clickhouse {
        /// Snapshot restored.
        snapshot: Id,
        /// What was restored.
        clickhouse: ChRestoreOutcome,
    },
    /// A physical restore, with its point-in-time recovery.
    Physical {
        /// Snapshot restored (the base backup chosen for the target).
        snapshot: Id,
        /// The new data directory.
        target: PathBuf,
        /// What was written.
        summary: RestoreSummary,
        /// Wall time, recovery included.
        seconds: f64,
        /// The recovery set up (and with `--start`, how it ended).
        recovery: Option<RecoveryReport>,
    },
    /// A PostgreSQL restore (or its dry run: `outcome.planned`).
    Postgres {
        /// Snapshot restored.
        snapshot: Id,
        /// Target, password redacted.
        target: String,
        /// What pg_restore did.
        outcome: PgRestoreOutcome,
    },
}

/// Carry out a plan. A files plan with `dry_run` is refused: its preview
/// ([`RestorePlan::files`]) is the dry run.
pub async fn execute(plan: RestorePlan, progress: Arc<Progress>) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    progress.set_phase("restoring");
    match plan.target {
        Target::Files(files) => {
            if plan.dry_run {
                return Err(EngineError::Other(
                    "a dry-run plan is not executed; read its preview".into(),
                ));
            }
            let target = files.target.clone();
            progress
                .total_bytes
                .store(files.summary().bytes, std::sync::atomic::Ordering::Relaxed);
            let summary = restore_files::execute(&plan.repo, files, plan.force, progress).await?;
            Ok(RestoreReport::Files {
                snapshot: plan.id,
                target,
                summary,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Target::Physical(p) => {
            progress.total_bytes.store(
                plan.snapshot.stats.bytes,
                std::sync::atomic::Ordering::Relaxed,
            );
            let summary =
                restore_physical(&plan.repo, &plan.id, &plan.snapshot, &p.req, progress).await?;
            let recovery = recover(&plan.snapshot, &p).await?;
            Ok(RestoreReport::Physical {
                snapshot: plan.id,
                target: p.req.to,
                summary,
                seconds: started.elapsed().as_secs_f64(),
                recovery,
            })
        }
        Target::Clickhouse(req) => {
            let outcome = restore_clickhouse(&plan.repo, &plan.snapshot, *req, progress).await?;
            Ok(RestoreReport::Clickhouse {
                snapshot: plan.id,
                clickhouse: outcome,
            })
        }
        Target::Postgres(req) => {
            let target = req.target.to_string();
            let outcome = restore_logical(&plan.repo, &plan.snapshot, *req, progress).await?;
            Ok(RestoreReport::Postgres {
                snapshot: plan.id,
                target,
                outcome,
            })
        }
    }
}

/// Write the recovery settings and, with `--start`, run the recovery.
async fn recover(snap: &Snapshot, p: &PhysicalPlan) -> Result<Option<RecoveryReport>> {
    if !p.recovery.wanted() {
        return Ok(None);
    }
    let meta = PhysicalMeta::of(snap)?;
    write_recovery_config(&p.req.to, &p.settings, &meta)?;
    let outcome = if p.recovery.start {
        Some(start_and_wait(p.req.to.clone(), &meta, p.bin_dir.clone(), &p.recovery).await?)
    } else {
        None
    };
    Ok(Some(RecoveryReport {
        target: p.recovery.describe(),
        settings: p.settings.clone(),
        outcome,
    }))
}
