//! `verify [--read-data[=N%]]`.

use super::Context;
use crate::args::VerifyArgs;
use crate::exit;
use crate::output::{self, size};
use anyhow::{bail, Result};
use lifeboat_engine::verify::verify_repository;
use std::process::ExitCode;

fn parse_percent(s: &str) -> Result<f64> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| anyhow::anyhow!("--read-data={s}: expected a percentage such as 10%"))?;
    if !(v > 0.0 && v <= 100.0) {
        bail!("--read-data={s}: the percentage must be in (0, 100]");
    }
    Ok(v)
}

pub async fn run(ctx: &Context, a: VerifyArgs) -> Result<ExitCode> {
    let pct = a.read_data.as_deref().map(parse_percent).transpose()?;
    let repo = ctx.repo.open_without_index().await?;
    let report = verify_repository(&repo, pct).await?;
    if ctx.global.json {
        output::json(&serde_json::json!({"ok": report.is_ok(), "report": report}));
    } else {
        println!(
            "checked {} snapshots, {} index files, {} packs, {} blobs{}",
            report.snapshots,
            report.index_files,
            report.packs,
            report.blobs,
            if pct.is_some() {
                format!(
                    "; read {} packs ({})",
                    report.packs_read,
                    size(report.bytes_read)
                )
            } else {
                String::new()
            }
        );
        if report.unindexed_packs > 0 {
            println!(
                "note: {} pack(s) are not indexed (left by an interrupted backup)",
                report.unindexed_packs
            );
        }
        for p in &report.problems {
            println!("error: {}: {}", p.object, p.message);
        }
        for d in &report.damaged_snapshots {
            println!(
                "damaged snapshot {} ({} {}): {}",
                d.id.short(),
                d.source.as_deref().unwrap_or("?"),
                d.time.as_deref().unwrap_or("?"),
                d.paths.join(", ")
            );
        }
        println!(
            "{}",
            if report.is_ok() {
                "no problems found"
            } else {
                "PROBLEMS FOUND"
            }
        );
    }
    Ok(ExitCode::from(if report.is_ok() {
        exit::OK
    } else {
        exit::DAMAGED
    }))
}
