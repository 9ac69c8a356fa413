//! `restore`: plan, refuse conflicts unless --force, execute.

use super::Context;
use crate::args::RestoreArgs;
use crate::output::{self, size, ProgressLine};
use anyhow::Result;
use lifeboat_engine::progress::Progress;
use lifeboat_engine::restore_files::{execute, plan};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(ctx: &Context, a: RestoreArgs) -> Result<ExitCode> {
    let repo = ctx.repo.open().await?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, a.source.as_deref()).await?;
    let target = PathBuf::from(&a.to);
    let plan = plan(&repo, &snap, &target, &a.paths).await?;
    let summary = plan.summary();
    if a.dry_run {
        if ctx.global.json {
            let items: Vec<_> = plan
                .items
                .iter()
                .map(|i| i.rel.display().to_string())
                .collect();
            let conflicts: Vec<_> = plan
                .conflicts
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            output::json(
                &serde_json::json!({"snapshot": id, "target": target, "summary": summary, "items": items, "conflicts": conflicts}),
            );
        } else {
            for i in &plan.items {
                println!("would restore {}", target.join(&i.rel).display());
            }
            for c in &plan.conflicts {
                println!("would overwrite {}", c.display());
            }
            println!(
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
        println!(
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
