//! `restore`: plan, refuse conflicts unless --force, execute.

use super::Context;
use crate::args::RestoreArgs;
use crate::output::{self, size, ProgressLine};
use anyhow::{Context as _, Result};
use lifeboat_engine::config::resolve_secret;
use lifeboat_engine::postgres::{restore_logical, PgLogicalRestore};
use lifeboat_engine::progress::Progress;
use lifeboat_engine::restore_files::{execute, plan};
use lifeboat_sources::postgres::{PgTarget, RestoreOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn is_postgres_target(to: &str) -> bool {
    to.starts_with("postgres://") || to.starts_with("postgresql://") || to.starts_with("env:")
}

pub async fn run(ctx: &Context, a: RestoreArgs) -> Result<ExitCode> {
    let repo = ctx.repo.open().await?;
    let ((id, snap), skipped) = repo
        .find_snapshot_with(&a.snapshot, a.source.as_deref(), a.skip_damaged)
        .await?;
    for bad in &skipped {
        eprintln!(
            "warning: snapshot {bad} cannot be read and was skipped (--skip-damaged); restoring {} of {} instead; run `lifeboat verify`",
            id.short(),
            snap.time
        );
    }
    if is_postgres_target(&a.to) {
        return restore_postgres(ctx, &repo, id, &snap, a).await;
    }
    let target = PathBuf::from(&a.to);
    let plan = plan(&repo, &id, &snap, &target, &a.paths).await?;
    let summary = plan.summary();
    if a.dry_run {
        if ctx.global.json {
            let mut items = Vec::new();
            plan.for_each(&repo, |rel, _| items.push(rel.display().to_string()))
                .await?;
            let conflicts: Vec<_> = plan
                .conflicts
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            output::json(
                &serde_json::json!({"snapshot": id, "target": target, "summary": summary, "items": items, "conflicts": conflicts, "resumes": plan.resumes()}),
            );
        } else {
            plan.for_each(&repo, |rel, _| {
                crate::outln!("would restore {}", target.join(rel).display());
            })
            .await?;
            for c in &plan.conflicts {
                crate::outln!("would overwrite {}", c.display());
            }
            if plan.resumes() {
                crate::outln!(
                    "would complete the unfinished restore of this snapshot in the target"
                );
            }
            crate::outln!(
                "{} files, {} dirs, {} symlinks, {}",
                summary.files,
                summary.dirs,
                summary.symlinks,
                size(summary.bytes)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = Arc::new(Progress::default());
    progress
        .total_bytes
        .store(summary.bytes, std::sync::atomic::Ordering::Relaxed);
    progress.set_phase("restoring");
    let started = std::time::Instant::now();
    let line = ProgressLine::start(progress.clone(), ctx.global.quiet || ctx.global.json);
    let result = execute(&repo, plan, a.force, progress).await;
    drop(line);
    let done = result?;
    let secs = started.elapsed().as_secs_f64();
    if ctx.global.json {
        output::json(
            &serde_json::json!({"snapshot": id, "target": target, "summary": done, "seconds": secs}),
        );
    } else {
        crate::outln!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {secs:.1}s",
            id.short(),
            target.display(),
            done.files,
            done.dirs,
            done.symlinks,
            size(done.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_postgres(
    ctx: &Context,
    repo: &Arc<lifeboat_repo::Repository>,
    id: lifeboat_repo::Id,
    snap: &lifeboat_repo::Snapshot,
    a: RestoreArgs,
) -> Result<ExitCode> {
    let url = resolve_secret(&a.to)?;
    let target = PgTarget::parse(&url).context("invalid --to URL")?;
    let opts = RestoreOptions {
        tables: a.pg.tables.clone(),
        schemas: a.pg.schemas.clone(),
        schema_only: a.pg.schema_only,
        data_only: a.pg.data_only,
        clean: a.clean,
        jobs: a.jobs,
        ..RestoreOptions::default()
    };
    let req = PgLogicalRestore {
        target: target.clone(),
        bin_dir: super::backup::source_bin_dir(ctx, &snap.source),
        opts,
        force: a.force,
        roles: a.roles,
        dry_run: a.dry_run,
    };
    let progress = Arc::new(Progress::default());
    progress.set_phase("restoring");
    let line = ProgressLine::start(progress.clone(), ctx.global.quiet || ctx.global.json);
    let result = restore_logical(repo, snap, req, progress).await;
    drop(line);
    let o = result?;
    if let (Some(planned), false) = (&o.planned, ctx.global.json) {
        for line in planned {
            crate::outln!("would restore {line}");
        }
        for (what, why) in &o.skipped {
            crate::outln!("would leave out {what}: {why}");
        }
        crate::outln!(
            "dry run: {} archive entries into {} ({}){}; nothing was changed",
            planned.len(),
            target,
            if o.created {
                "would create the database"
            } else {
                "existing database"
            },
            if a.roles {
                ", after applying the captured roles"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    if ctx.global.json {
        output::json(
            &serde_json::json!({"snapshot": id, "target": target.to_string(), "outcome": o}),
        );
    } else {
        for w in &o.globals_warnings {
            eprintln!("warning: globals: {w}");
        }
        for (what, why) in &o.skipped {
            eprintln!("note: left out {what}: {why}");
        }
        crate::outln!(
            "restored snapshot {} into {} ({}{}) in {:.1}s",
            id.short(),
            target,
            if o.created {
                "created the database"
            } else {
                "existing database"
            },
            o.entries
                .map(|n| format!(", {n} archive entries"))
                .unwrap_or_default(),
            o.seconds
        );
        crate::outln!("  restored with {}", o.method);
    }
    Ok(ExitCode::SUCCESS)
}
