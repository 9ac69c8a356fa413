//! `backup`: a configured source by name, or paths given on the command line.

use super::Context;
use crate::args::BackupArgs;
use crate::exit;
use crate::output::{self, size, ProgressBar};
use anyhow::Result;
use lifeboat_engine::backup::{self, BackupReport, BackupRequest};
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
    let progress = Arc::new(Progress::default());
    let bar = ProgressBar::start(progress.clone(), ctx.progress_wanted());
    let report = backup::run(&ctx.engine, request(a), progress).await;
    drop(bar);
    let report = report?;
    print_report(ctx, &report);
    Ok(ExitCode::from(if report.complete() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

fn print_report(ctx: &Context, o: &BackupReport) {
    let s = &o.snapshot.stats;
    if ctx.global.json {
        output::json(&serde_json::to_value(o).expect("json"));
        return;
    }
    for n in &o.notes {
        crate::outln!("note: {n}");
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
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
