//! `run-due`: run the scheduled jobs that are due now, once, and print
//! what ran; exit 22 when a job failed.

use super::Context;
use crate::args::RunDueArgs;
use crate::exit;
use crate::output;
use anyhow::Result;
use lifeboat_engine::jobs::{self, JobOutcome, RunDueReport, RunDueRequest};
use std::process::ExitCode;

pub async fn run(ctx: &Context, a: RunDueArgs) -> Result<ExitCode> {
    let req = RunDueRequest { source: a.source };
    let report = jobs::run_due(&ctx.engine, req).await?;
    print(ctx, &report);
    Ok(ExitCode::from(if report.failed() {
        exit::JOB_FAILED
    } else {
        exit::OK
    }))
}

fn print(ctx: &Context, r: &RunDueReport) {
    if ctx.global.json {
        output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
    for j in &r.interrupted {
        eprintln!(
            "warning: {} job {} of {} (slot {}, started {}) was interrupted: {}",
            j.kind,
            j.job,
            j.source,
            j.slot,
            j.started,
            j.error.as_deref().unwrap_or("")
        );
    }
    for b in &r.busy {
        crate::outln!(
            "{}: skipped, another lifeboat is running one of its jobs (lock in {})",
            b.source,
            b.lock
        );
    }
    for j in &r.jobs {
        print_job(j);
    }
    if r.jobs.is_empty() {
        crate::outln!("nothing due");
    }
    if let Some(n) = &r.next {
        crate::outln!("next slot: {n}");
    }
}

fn print_job(j: &JobOutcome) {
    let secs = j.figures.duration_ms.unwrap_or(0) as f64 / 1000.0;
    match &j.error {
        None => crate::outln!(
            "{} {}: {} in {secs:.1}s{}",
            j.source,
            j.kind,
            j.result.as_str(),
            j.figures
                .snapshot
                .map(|s| format!(", snapshot {}", s.short()))
                .unwrap_or_default()
        ),
        Some(e) => crate::outln!(
            "{} {}: {} after {secs:.1}s: {e}",
            j.source,
            j.kind,
            j.result.as_str()
        ),
    }
}
