//! `restore`: plan, print a dry run or execute, print the report.

use super::Context;
use crate::args::{RecoveryArgs, RestoreArgs};
use crate::output::{self, size, ProgressBar};
use anyhow::Result;
use lifeboat_engine::restore::{self, FilesPreview, RestorePlan, RestoreReport, RestoreRequest};
use std::process::ExitCode;

/// The `wal fetch` command line a restored server runs as its
/// `restore_command`: this binary with the same repository, config and
/// secret, all as absolute file paths (a secret only in the environment
/// cannot reach it).
fn fetch_command(ctx: &Context) -> Result<Vec<String>> {
    let abs = |p: &std::path::Path| -> Result<String> {
        Ok(std::path::absolute(p)?.display().to_string())
    };
    let mut cmd = vec![abs(&std::env::current_exe()?)?];
    let g = &ctx.global;
    if let Some(c) = &g.config {
        cmd.extend(["--config".into(), abs(c)?]);
    }
    if let Some(r) = &g.repo {
        let r = if r.contains("://") {
            r.clone()
        } else {
            abs(std::path::Path::new(r))?
        };
        cmd.extend(["--repo".into(), r]);
    }
    let spec = &ctx.engine.repo;
    if let Some(k) = &g.key_file {
        cmd.extend(["--key-file".into(), abs(k)?]);
    } else if let Some(p) = &g.password_file {
        cmd.extend(["--password-file".into(), abs(p)?]);
    } else if spec.key_file.is_none() && spec.password_file.is_none() {
        return Err(lifeboat_engine::EngineError::Config(
            "point-in-time recovery writes a restore_command that runs `lifeboat wal fetch` as the server's user, and a passphrase from the environment cannot reach it: give --key-file (from `lifeboat key export`) or --password-file, or key_file / password_file in the config".into(),
        )
        .into());
    }
    Ok(cmd)
}

fn recovery(r: RecoveryArgs, fetch: Vec<String>) -> lifeboat_engine::postgres::RecoveryRequest {
    lifeboat_engine::postgres::RecoveryRequest {
        time: r.target_time,
        lsn: r.target_lsn,
        xid: r.target_xid,
        name: r.target_name,
        immediate: r.target.is_some(),
        timeline: r.target_timeline,
        action: r.target_action,
        start: r.start,
        fetch_command: fetch,
    }
}

fn wants_recovery(r: &RecoveryArgs) -> bool {
    r.target_time.is_some()
        || r.target_lsn.is_some()
        || r.target_xid.is_some()
        || r.target_name.is_some()
        || r.target.is_some()
        || r.target_timeline.is_some()
        || r.target_action.is_some()
        || r.start
}

fn request(a: RestoreArgs, fetch: Vec<String>) -> RestoreRequest {
    RestoreRequest {
        recovery: recovery(a.recovery, fetch),
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
    let fetch = if wants_recovery(&a.recovery) {
        fetch_command(ctx)?
    } else {
        Vec::new()
    };
    let plan = restore::plan(&ctx.engine, request(a, fetch)).await?;
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
        RestoreReport::Physical {
            snapshot,
            target,
            summary: done,
            seconds,
            recovery,
        } => {
            if ctx.global.json {
                output::json(
                    &serde_json::json!({"snapshot": snapshot, "target": target, "summary": done, "seconds": seconds, "recovery": recovery}),
                );
            } else {
                crate::outln!(
                    "restored physical snapshot {} to {}: {} files, {} in {seconds:.1}s",
                    snapshot.short(),
                    target.display(),
                    done.files,
                    size(done.bytes)
                );
                if let Some(r) = &recovery {
                    print_recovery(r);
                }
            }
        }
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

fn print_recovery(r: &lifeboat_engine::postgres::RecoveryReport) {
    crate::outln!(
        "  recovery to {}: recovery.signal and postgresql.auto.conf written",
        r.target
    );
    let Some(o) = &r.outcome else {
        crate::outln!("  start the server on the directory to recover");
        return;
    };
    crate::outln!(
        "  recovery ended: {}{}{}{}",
        serde_json::to_value(o.state)
            .expect("json")
            .as_str()
            .unwrap_or_default(),
        o.end_lsn
            .as_ref()
            .map(|l| format!(", redo done at {l}"))
            .unwrap_or_default(),
        o.end_time
            .as_ref()
            .map(|t| format!(", last transaction at {t}"))
            .unwrap_or_default(),
        o.new_timeline
            .map(|t| format!(", new timeline {t}"))
            .unwrap_or_default()
    );
    if let Some(s) = &o.stopped {
        crate::outln!("  {s}");
    }
    if let Some(pid) = o.pid {
        crate::outln!(
            "  the server runs (pid {pid}) on the socket in {} only; log {}",
            o.socket_dir.display(),
            o.log.display()
        );
    }
}
