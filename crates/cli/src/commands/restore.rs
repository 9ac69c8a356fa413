//! `restore`: plan, print a dry run or execute, print the report.

use super::Context;
use crate::args::RestoreArgs;
use crate::output::{self, size, ProgressBar};
use anyhow::Result;
use lifeboat_engine::restore::{self, FilesPreview, RestorePlan, RestoreReport, RestoreRequest};
use std::process::ExitCode;

fn request(a: RestoreArgs) -> RestoreRequest {
    RestoreRequest {
        snapshot: a.snapshot,
        source: a.source,
        to: a.to,
        paths: a.paths,
        force: a.force,
        dry_run: a.dry_run,
        pg: a.pg.into(),
        clean: a.clean,
        jobs: a.jobs,
        roles: a.roles,
        skip_damaged: a.skip_damaged,
        tablespace_map: a.tablespace_map,
        database: a.database,
        rename: a.rename,
        partitions: a.partitions,
        replace: a.replace,
    }
}

pub async fn run(ctx: &Context, a: RestoreArgs) -> Result<ExitCode> {
    let roles = a.roles;
    let plan = restore::plan(&ctx.engine, request(a)).await?;
    for bad in &plan.skipped_damaged {
        eprintln!(
            "warning: snapshot {bad} cannot be read and was skipped (--skip-damaged); restoring {} of {} instead; run `lifeboat verify`",
            plan.id.short(),
            plan.snapshot.time
        );
    }
    if plan.dry_run {
        if let Some(files) = plan.files() {
            print_files_dry_run(ctx, &plan, &files).await?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let pg_target = plan.postgres_target().map(|t| t.to_string());
    let progress = plan.progress();
    let bar = ProgressBar::start(progress.clone(), ctx.progress_wanted());
    let report = restore::execute(plan, progress).await;
    drop(bar);
    match report? {
        RestoreReport::Files {
            snapshot,
            target,
            summary: done,
            seconds,
        } => {
            if ctx.global.json {
                output::json(
                    &serde_json::json!({"snapshot": snapshot, "target": target, "summary": done, "seconds": seconds}),
                );
            } else {
                crate::outln!(
                    "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {seconds:.1}s",
                    snapshot.short(),
                    target.display(),
                    done.files,
                    done.dirs,
                    done.symlinks,
                    size(done.bytes)
                );
            }
        }
        RestoreReport::Clickhouse {
            snapshot,
            clickhouse: o,
        } => print_clickhouse(ctx, &snapshot, &o),
        r @ RestoreReport::Postgres { .. } => {
            print_postgres(ctx, &r, &pg_target.unwrap_or_default(), roles)
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn print_files_dry_run(
    ctx: &Context,
    plan: &RestorePlan,
    files: &FilesPreview<'_>,
) -> Result<()> {
    let summary = files.summary();
    let target = files.target();
    if ctx.global.json {
        let mut items = Vec::new();
        files
            .for_each(|rel| items.push(rel.display().to_string()))
            .await?;
        let conflicts: Vec<_> = files
            .conflicts()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        output::json(
            &serde_json::json!({"snapshot": plan.id, "target": target, "summary": summary, "items": items, "conflicts": conflicts, "resumes": files.resumes()}),
        );
        return Ok(());
    }
    files
        .for_each(|rel| crate::outln!("would restore {}", target.join(rel).display()))
        .await?;
    for c in files.conflicts() {
        crate::outln!("would overwrite {}", c.display());
    }
    if files.resumes() {
        crate::outln!("would complete the unfinished restore of this snapshot in the target");
    }
    crate::outln!(
        "{} files, {} dirs, {} symlinks, {}",
        summary.files,
        summary.dirs,
        summary.symlinks,
        size(summary.bytes)
    );
    Ok(())
}

fn print_postgres(ctx: &Context, r: &RestoreReport, target: &str, roles: bool) {
    let RestoreReport::Postgres {
        snapshot: id,
        outcome: o,
        ..
    } = r
    else {
        return;
    };
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
            if roles {
                ", after applying the captured roles"
            } else {
                ""
            }
        );
        return;
    }
    if ctx.global.json {
        output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
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

fn print_clickhouse(
    ctx: &Context,
    id: &lifeboat_engine::types::Id,
    o: &lifeboat_engine::clickhouse::ChRestoreOutcome,
) {
    if ctx.global.json {
        output::json(&serde_json::json!({"snapshot": id, "clickhouse": o}));
        return;
    }
    if let Some(planned) = &o.planned {
        for sql in planned {
            crate::outln!("would run: {sql}");
        }
        crate::outln!("dry run: nothing was changed on {}", o.server);
        return;
    }
    for n in &o.notes {
        crate::outln!("note: {n}");
    }
    crate::outln!(
        "restored snapshot {} into {} ({}): {} objects created, {} tables loaded, {} partitions, {} rows in {:.1}s",
        id.short(),
        o.server,
        o.databases.join(", "),
        o.created.len(),
        o.loaded.len(),
        o.partitions,
        o.rows,
        o.seconds
    );
}
