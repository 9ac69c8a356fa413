//! `verify [--read-data[=N%]]` and `verify --restore-test`.

use super::Context;
use crate::args::VerifyArgs;
use crate::exit;
use crate::output::{self, size};
use anyhow::Result;
use lifeboat_engine::verify::{
    self, parse_read_data, RestoreTestOutcome, RestoreTestRequest, VerifyReport, VerifyRequest,
};
use std::process::ExitCode;

async fn run_restore_test(ctx: &Context, a: VerifyArgs) -> Result<ExitCode> {
    let req = RestoreTestRequest {
        snapshot: a.snapshot,
        source: a.source,
        to: a.to,
    };
    let o = verify::restore_test(&ctx.engine, req).await?;
    if ctx.global.json {
        output::json(&serde_json::json!({"ok": o.report.ok, "restore_test": o.report}));
    } else {
        print_restore_test(&o);
    }
    Ok(ExitCode::from(if o.report.ok {
        exit::OK
    } else {
        exit::DAMAGED
    }))
}

fn print_restore_test(o: &RestoreTestOutcome) {
    let r = &o.report;
    crate::outln!(
        "restore test of snapshot {} ({} {}): restored in {:.1}s, {} tables checked",
        o.id.short(),
        o.source,
        o.time,
        r.restore_ms as f64 / 1000.0,
        r.tables_checked
    );
    for c in &r.checks {
        crate::outln!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    crate::outln!(
        "{}",
        if r.ok {
            "restore test passed"
        } else {
            "RESTORE TEST FAILED"
        }
    );
}

pub async fn run(ctx: &Context, a: VerifyArgs) -> Result<ExitCode> {
    if a.restore_test {
        return run_restore_test(ctx, a).await;
    }
    let pct = a.read_data.as_deref().map(parse_read_data).transpose()?;
    let v = verify::verify(
        &ctx.engine,
        VerifyRequest {
            read_data_percent: pct,
        },
    )
    .await?;
    let report = &v.report;
    if ctx.global.json {
        output::json(
            &serde_json::json!({"ok": report.is_ok(), "report": report, "locks": v.locks}),
        );
    } else {
        print_report(&v, pct.is_some());
    }
    Ok(ExitCode::from(if !report.is_ok() {
        exit::DAMAGED
    } else if !report.unsupported.is_empty() {
        exit::UNSUPPORTED_VERSION
    } else {
        exit::OK
    }))
}

fn print_report(v: &VerifyReport, read_data: bool) {
    let report = &v.report;
    crate::outln!(
        "checked {} snapshots, {} index files, {} packs, {} blobs{}",
        report.snapshots,
        report.index_files,
        report.packs,
        report.blobs,
        if read_data {
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
    for l in &v.locks {
        let pid = l.pid.map_or_else(|| "null".to_string(), |p| p.to_string());
        crate::outln!(
            "note: backup lock {} (host {}, pid {pid}, started {}, last heartbeat {}): {}",
            l.key,
            l.host.as_deref().unwrap_or("?"),
            l.started.as_deref().unwrap_or("?"),
            l.heartbeat.as_deref().unwrap_or("?"),
            if l.stale {
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
