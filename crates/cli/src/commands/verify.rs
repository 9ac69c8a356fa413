//! `verify [--read-data[=N%]]`.

use super::Context;
use crate::args::VerifyArgs;
use crate::exit;
use crate::output::{self, size};
use anyhow::Result;
use lifeboat_engine::postgres::restore_test;
use lifeboat_engine::verify::verify_repository;
use lifeboat_engine::EngineError;
use std::process::ExitCode;

fn parse_percent(s: &str) -> Result<f64> {
    let bad = || {
        EngineError::Config(format!(
            "--read-data={s}: expected a percentage in (0, 100], such as 10%"
        ))
    };
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| bad())?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(bad().into());
    }
    Ok(v)
}

async fn run_restore_test(ctx: &Context, a: &VerifyArgs) -> Result<ExitCode> {
    let repo = ctx.repo.open().await?;
    let spec = a.snapshot.as_deref().unwrap_or("latest");
    let (id, snap) = if spec == "latest" && a.source.is_none() {
        let all = repo.snapshots().await?;
        let (id, _) = all
            .into_iter()
            .rev()
            .find(|(_, s)| s.kind == lifeboat_engine::postgres::KIND_LOGICAL)
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL logical snapshot to test"))?;
        (id, repo.load_snapshot(&id).await?)
    } else {
        repo.find_snapshot(spec, a.source.as_deref()).await?
    };
    let verify_cfg = ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == snap.source))
        .map(|s| s.verify.clone())
        .unwrap_or_default();
    let bin_dir = super::backup::source_bin_dir(ctx, &snap.source);
    let report = restore_test(&repo, id, &snap, &verify_cfg, bin_dir).await?;
    if ctx.global.json {
        output::json(&serde_json::json!({"ok": report.ok, "restore_test": report}));
    } else {
        crate::outln!(
            "restore test of snapshot {} ({} {}): restored in {:.1}s, {} tables checked",
            id.short(),
            snap.source,
            snap.time,
            report.restore_ms as f64 / 1000.0,
            report.tables_checked
        );
        for c in &report.checks {
            crate::outln!(
                "  {} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        crate::outln!(
            "{}",
            if report.ok {
                "restore test passed"
            } else {
                "RESTORE TEST FAILED"
            }
        );
    }
    Ok(ExitCode::from(if report.ok {
        exit::OK
    } else {
        exit::DAMAGED
    }))
}

/// The repository's lock objects for display (`stale` = no heartbeat for
/// `LOCK_STALE_AFTER`).
async fn lock_notes(repo: &lifeboat_repo::Repository) -> Result<Vec<serde_json::Value>> {
    let now = std::time::SystemTime::now();
    let locks = lifeboat_repo::lock::list_locks(&**repo.storage()).await?;
    Ok(locks
        .iter()
        .map(|l| {
            let info = l.info.as_ref();
            serde_json::json!({
                "key": l.meta.key,
                "kind": info.map(|i| i.kind.clone()),
                "host": info.map(|i| i.host.clone()),
                "pid": info.map(|i| i.pid),
                "started": info.map(|i| i.started.clone()),
                "heartbeat": info.map(|i| i.heartbeat.clone()),
                "stale": l.is_stale(now),
            })
        })
        .collect())
}

pub async fn run(ctx: &Context, a: VerifyArgs) -> Result<ExitCode> {
    if a.restore_test {
        return run_restore_test(ctx, &a).await;
    }
    let pct = a.read_data.as_deref().map(parse_percent).transpose()?;
    let repo = ctx.repo.open_without_index().await?;
    let report = verify_repository(&repo, pct).await?;
    let locks = lock_notes(&repo).await?;
    if ctx.global.json {
        output::json(&serde_json::json!({"ok": report.is_ok(), "report": report, "locks": locks}));
    } else {
        crate::outln!(
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
            crate::outln!(
                "note: {} orphan pack(s) are not referenced by any index file: left by an interrupted backup (or written by one still running); no snapshot uses them, nothing is damaged, and `lifeboat prune` will reclaim the space:",
                report.unindexed_packs
            );
            for key in &report.unindexed_pack_keys {
                crate::outln!("  orphan pack {key}");
            }
        }
        for l in &locks {
            crate::outln!(
                "note: backup lock {} (host {}, pid {}, started {}, last heartbeat {}): {}",
                l["key"].as_str().unwrap_or("?"),
                l["host"].as_str().unwrap_or("?"),
                l["pid"],
                l["started"].as_str().unwrap_or("?"),
                l["heartbeat"].as_str().unwrap_or("?"),
                if l["stale"] == true {
                    "stale, its backup is gone"
                } else {
                    "a backup is running"
                }
            );
        }
        for p in &report.problems {
            crate::outln!("error: {}: {}", p.object, p.message);
        }
        for p in &report.unsupported {
            crate::outln!("unsupported: {}: {}", p.object, p.message);
        }
        for d in &report.damaged_snapshots {
            crate::outln!(
                "damaged snapshot {} ({} {}): {}",
                d.id.short(),
                d.source.as_deref().unwrap_or("?"),
                d.time.as_deref().unwrap_or("?"),
                d.paths.join(", ")
            );
        }
        crate::outln!(
            "{}",
            if !report.is_ok() {
                "PROBLEMS FOUND"
            } else if !report.unsupported.is_empty() {
                "no damage found, but some objects need a newer lifeboat to check"
            } else {
                "no problems found"
            }
        );
    }
    Ok(ExitCode::from(if !report.is_ok() {
        exit::DAMAGED
    } else if !report.unsupported.is_empty() {
        exit::UNSUPPORTED_VERSION
    } else {
        exit::OK
    }))
}
