//! `backup`: a configured source by name, or paths given on the command line.

use super::Context;
use crate::args::BackupArgs;
use crate::exit;
use crate::output::{self, size, ProgressLine};
use anyhow::{bail, Context as _, Result};
use lifeboat_engine::backup_command::{backup_command, CommandBackup};
use lifeboat_engine::backup_files::{backup_files, BackupOutcome, FilesBackup};
use lifeboat_engine::config::resolve_secret;
use lifeboat_engine::config::{SourceConfig, SourceKind};
use lifeboat_engine::postgres::{backup_logical, PgLogicalBackup, DEFAULT_LOCK_WAIT_TIMEOUT};
use lifeboat_engine::progress::Progress;
use lifeboat_engine::store::run_locked;
use lifeboat_repo::Repository;
use lifeboat_sources::env::Redactor;
use lifeboat_sources::files::Selection;
use lifeboat_sources::postgres::{DumpOptions, PgTarget, Profile};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(ctx: &Context, a: BackupArgs) -> Result<ExitCode> {
    let source = match (&ctx.config, a.targets.as_slice()) {
        (Some(cfg), [name]) if cfg.sources.iter().any(|s| &s.name == name) => {
            Some(cfg.source(name)?.clone())
        }
        _ => None,
    };
    match source {
        Some(src) => match src.kind {
            SourceKind::Files => files_from_config(ctx, &src, &a).await,
            SourceKind::Postgres => postgres_from_config(ctx, &src, &a).await,
            SourceKind::Command => command_from_config(ctx, &src, &a).await,
            SourceKind::Clickhouse => {
                bail!("clickhouse sources are not supported by this build yet")
            }
        },
        None => {
            let paths: Vec<PathBuf> = a.targets.iter().map(PathBuf::from).collect();
            let req = FilesBackup {
                source: a.source_name.clone(),
                paths,
                selection: Selection::new(&a.includes, &a.excludes)?,
                redactor: Redactor::new(!a.no_redact, &[], &[]),
                capture_env: a.env,
                time: a.time.clone(),
                tags: a.tags.clone(),
            };
            run_files(ctx, req).await
        }
    }
}

async fn files_from_config(ctx: &Context, src: &SourceConfig, a: &BackupArgs) -> Result<ExitCode> {
    let cfg = ctx.config.as_ref().expect("config present");
    let mut includes = src.include.clone();
    includes.extend(a.includes.iter().cloned());
    let mut excludes = src.exclude.clone();
    excludes.extend(a.excludes.iter().cloned());
    let req = FilesBackup {
        source: src.name.clone(),
        paths: src.paths.iter().map(|p| cfg.path(p)).collect(),
        selection: Selection::new(&includes, &excludes)?,
        redactor: Redactor::new(
            src.redact && !a.no_redact,
            &src.redact_names,
            &src.keep_names,
        ),
        capture_env: src.env || a.env,
        time: a.time.clone(),
        tags: a.tags.clone(),
    };
    run_files(ctx, req).await
}

async fn command_from_config(
    ctx: &Context,
    src: &SourceConfig,
    a: &BackupArgs,
) -> Result<ExitCode> {
    let cfg = ctx.config.as_ref().expect("config present");
    let req = CommandBackup::from_config(cfg, src, !a.no_redact, a.time.clone(), a.tags.clone())?;
    run_backup(ctx, |repo, progress| backup_command(repo, req, progress)).await
}

/// The configured `bin_dir` of a source, if any.
pub fn source_bin_dir(ctx: &Context, source: &str) -> Option<PathBuf> {
    let cfg = ctx.config.as_ref()?;
    let src = cfg.sources.iter().find(|s| s.name == source)?;
    src.bin_dir.as_deref().map(|d| cfg.path(d))
}

/// The dump options of a source: config defaults, replaced by any flag given.
fn dump_options(src: &SourceConfig, a: &BackupArgs) -> Result<DumpOptions> {
    let pick = |flag: &Vec<String>, cfg: &Vec<String>| {
        if flag.is_empty() {
            cfg.clone()
        } else {
            flag.clone()
        }
    };
    let profile = match src.profile.as_deref() {
        None | Some("plain") | Some("postgres") => Profile::Plain,
        Some("supabase") => Profile::Supabase {
            keep_auth_data: src.keeps_auth_data(),
            keep_storage_data: src.keeps_storage_data(),
        },
        Some(other) => bail!(
            "source {:?}: unknown profile {other:?} (expected \"supabase\")",
            src.name
        ),
    };
    let opts = DumpOptions {
        schema_only: a.pg.schema_only || (src.schema_only && !a.pg.data_only),
        data_only: a.pg.data_only || (src.data_only && !a.pg.schema_only),
        tables: pick(&a.pg.tables, &src.tables),
        schemas: pick(&a.pg.schemas, &src.schemas),
        exclude_tables: pick(&a.exclude_tables, &src.exclude_tables),
        exclude_schemas: pick(&a.exclude_schemas, &src.exclude_schemas),
        exclude_table_data: Vec::new(),
        profile,
    };
    if opts.schema_only && opts.data_only {
        bail!("--schema-only and --data-only exclude each other");
    }
    Ok(opts)
}

async fn postgres_from_config(
    ctx: &Context,
    src: &SourceConfig,
    a: &BackupArgs,
) -> Result<ExitCode> {
    match a.kind.as_deref() {
        None | Some("logical") => {}
        Some("physical") => {
            bail!("physical backups are not supported by this build yet; use --kind logical")
        }
        Some(other) => bail!("--kind {other}: expected logical"),
    }
    let url = resolve_secret(
        src.url
            .as_deref()
            .expect("validated: postgres sources have a url"),
    )?;
    let target =
        PgTarget::parse(&url).with_context(|| format!("source {:?}: invalid url", src.name))?;
    let req = PgLogicalBackup {
        source: src.name.clone(),
        target,
        bin_dir: source_bin_dir(ctx, &src.name),
        dump: dump_options(src, a)?,
        globals: src.globals,
        role_passwords: src.role_passwords,
        lock_wait_timeout: src
            .lock_wait_timeout
            .map(std::time::Duration::from_secs)
            .unwrap_or(DEFAULT_LOCK_WAIT_TIMEOUT),
        time: a.time.clone(),
        tags: a.tags.clone(),
    };
    run_backup(ctx, |repo, progress| backup_logical(repo, req, progress)).await
}

async fn run_files(ctx: &Context, req: FilesBackup) -> Result<ExitCode> {
    run_backup(ctx, |repo, progress| backup_files(repo, req, progress)).await
}

/// Open the repository, run a backup with a progress line, print the outcome;
/// exit 3 when entries were skipped.
async fn run_backup<F, Fut>(ctx: &Context, backup: F) -> Result<ExitCode>
where
    F: FnOnce(Arc<Repository>, Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = lifeboat_engine::Result<BackupOutcome>>,
{
    // The index is loaded under the backup lock (run_locked), not before it.
    let repo = ctx.repo.open_without_index().await?;
    let progress = Arc::new(Progress::default());
    let line = ProgressLine::start(progress.clone(), ctx.global.quiet || ctx.global.json);
    let outcome = run_locked(repo, |repo| backup(repo, progress)).await;
    drop(line);
    let outcome = outcome?;
    print_outcome(ctx, &outcome);
    Ok(ExitCode::from(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

/// What the snapshot's profile deliberately leaves out (Supabase opt-outs).
fn profile_notes(snap: &lifeboat_repo::Snapshot) -> Vec<String> {
    serde_json::from_value::<Profile>(snap.meta["options"]["profile"].clone())
        .map(|p| p.opt_out_notes())
        .unwrap_or_default()
}

fn print_outcome(ctx: &Context, o: &BackupOutcome) {
    let s = &o.snapshot.stats;
    let notes = profile_notes(&o.snapshot);
    if ctx.global.json {
        output::json(
            &serde_json::json!({"id": o.id, "snapshot": o.snapshot, "warnings": o.warnings, "notes": notes}),
        );
        return;
    }
    for n in &notes {
        crate::outln!("note: {n}");
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    if o.snapshot.kind != "files" {
        crate::outln!(
            "snapshot {} saved: {} {} ({} new blobs, {} added to the repository) in {:.1}s",
            o.id.short(),
            o.snapshot.kind,
            size(s.bytes),
            s.new_blobs,
            size(s.stored_bytes),
            s.duration_ms as f64 / 1000.0
        );
        return;
    }
    crate::outln!(
        "snapshot {} saved: {} files, {} dirs, {} ({} new blobs, {} added to the repository) in {:.1}s",
        o.id.short(),
        s.files,
        s.dirs,
        size(s.bytes),
        s.new_blobs,
        size(s.stored_bytes),
        s.duration_ms as f64 / 1000.0
    );
}
