//! `backup`: a configured source by name, or paths given on the command line.

use super::Context;
use crate::args::BackupArgs;
use crate::exit;
use crate::output::{self, size, ProgressBar};
use anyhow::Result;
use lifeboat_engine::backup::{self, BackupReport, BackupRequest};
use lifeboat_engine::copy::{self, CopyReport};
use lifeboat_engine::forget::{self, AfterBackup};
use lifeboat_engine::progress::Progress;
use lifeboat_engine::types::SnapshotKind;
use std::process::ExitCode;
use std::sync::Arc;

fn request(a: BackupArgs) -> BackupRequest {
    BackupRequest {
        targets: a.targets,
        kind: a.kind,
        time: a.time,
        tags: a.tags,
        excludes: a.excludes,
        includes: a.includes,
        env: a.env,
        no_redact: a.no_redact,
        source_name: a.source_name,
        pg: a.pg.into(),
        exclude_tables: a.exclude_tables,
        exclude_schemas: a.exclude_schemas,
    }
}

/// Run the backup with a progress bar, print the report; exit 3 when
/// entries were skipped or changed while read.
pub async fn run(ctx: &Context, a: BackupArgs) -> Result<ExitCode> {
    let forget_asked = a.forget;
    let progress = Arc::new(Progress::default());
    let bar = ProgressBar::start(progress.clone(), ctx.progress_wanted());
    let report = backup::run(&ctx.engine, request(a), progress).await;
    drop(bar);
    let report = report?;
    let source = &report.snapshot.source;
    let plan = if forget_asked || forget::wanted_after_backup(&ctx.engine, source) {
        match forget::after_backup(&ctx.engine, source).await {
            Ok(plan) => Some(plan),
            Err(e) => {
                print_report(ctx, &report, None, &[]);
                return Err(e.into());
            }
        }
    } else {
        None
    };
    let copies = match copy::after_backup(&ctx.engine, source).await {
        Ok(c) => c,
        Err(e) => {
            print_report(ctx, &report, plan.as_ref(), &[]);
            let targets = copy::targets_after_backup(&ctx.engine, source).join(", ");
            return Err(anyhow::Error::from(e).context(format!(
                "the backup is saved, but copying it to its copy_to target(s) ({targets}) failed; fix the target, then run `lifeboat copy --to NAME`"
            )));
        }
    };
    print_report(ctx, &report, plan.as_ref(), &copies);
    Ok(ExitCode::from(if report.complete() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

/// The backup's report, then (`--forget`) the retention applied after it
/// and the copies made (`copy_to`); with `--json` one object, the retention
/// under `forget`, the copies under `copies`.
fn print_report(
    ctx: &Context,
    o: &BackupReport,
    plan: Option<&AfterBackup>,
    copies: &[CopyReport],
) {
    if ctx.global.json {
        let mut v = serde_json::to_value(o).expect("json");
        if let Some(p) = plan {
            v["forget"] = serde_json::to_value(p).expect("json");
        }
        if !copies.is_empty() {
            v["copies"] = serde_json::to_value(copies).expect("json");
        }
        output::json(&v);
        return;
    }
    print_text(o);
    if let Some(p) = plan {
        super::forget::print(ctx, &p.forget);
        if let Some(pruned) = &p.prune {
            super::prune::print(ctx, pruned);
        }
    }
    for c in copies {
        super::copy::print(c);
    }
}

fn print_text(o: &BackupReport) {
    let s = &o.snapshot.stats;
    for n in &o.notes {
        crate::outln!("note: {n}");
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    if o.snapshot.kind == SnapshotKind::Clickhouse {
        let st = &o.snapshot.meta["stats"];
        crate::outln!(
            "clickhouse: {} tables, {} partitions ({} read, {} unchanged and reused), {} rows",
            st["tables"],
            st["partitions"],
            st["partitions_read"],
            st["partitions_reused"],
            st["rows"]
        );
    }
    if o.snapshot.kind != SnapshotKind::Files {
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
