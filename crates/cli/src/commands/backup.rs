//! `backup`: a configured source by name, or paths given on the command line.

use super::Context;
use crate::args::BackupArgs;
use crate::exit;
use crate::output::{self, size, ProgressLine};
use anyhow::{bail, Result};
use lifeboat_engine::backup_files::{backup_files, BackupOutcome, FilesBackup};
use lifeboat_engine::config::{SourceConfig, SourceKind};
use lifeboat_engine::progress::Progress;
use lifeboat_sources::env::Redactor;
use lifeboat_sources::files::Selection;
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
            SourceKind::Postgres => bail!("postgres sources are not supported by this build yet"),
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

async fn run_files(ctx: &Context, req: FilesBackup) -> Result<ExitCode> {
    let repo = ctx.repo.open().await?;
    let progress = Arc::new(Progress::default());
    let line = ProgressLine::start(progress.clone(), ctx.global.quiet || ctx.global.json);
    let outcome = backup_files(repo, req, progress).await;
    drop(line);
    let outcome = outcome?;
    print_outcome(ctx, &outcome);
    Ok(ExitCode::from(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

fn print_outcome(ctx: &Context, o: &BackupOutcome) {
    let s = &o.snapshot.stats;
    if ctx.global.json {
        output::json(
            &serde_json::json!({"id": o.id, "snapshot": o.snapshot, "warnings": o.warnings}),
        );
        return;
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    println!(
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
