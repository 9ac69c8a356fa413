//! `snapshots` and `ls`.

use super::Context;
use crate::args::{LsArgs, SnapshotsArgs};
use crate::output::size;
use anyhow::Result;
use lifeboat_engine::listing::{self, ListedSnapshot, LsEntry, LsRequest};
use lifeboat_engine::types::NodeKind;
use std::process::ExitCode;

pub async fn list(ctx: &Context, a: SnapshotsArgs) -> Result<ExitCode> {
    let listing = listing::snapshots(&ctx.engine, a.source.as_deref()).await?;
    for u in &listing.unreadable {
        if u.unsupported {
            eprintln!(
                "warning: snapshot {} is unsupported: {}",
                u.id.short(),
                u.message
            )
        } else {
            eprintln!(
                "warning: snapshot {} cannot be read: {} (run `lifeboat verify`)",
                u.id.short(),
                u.message
            )
        }
    }
    for u in &listing.unreadable_records {
        eprintln!(
            "warning: restore-test record verifications/{} cannot be read: {} (run `lifeboat verify`)",
            u.id, u.message
        );
    }
    if ctx.global.json {
        // One whole snapshot (with its meta) in memory at a time.
        crate::outln!("[");
        for (i, s) in listing.snapshots.iter().enumerate() {
            let mut v = serde_json::to_value(listing.load(&s.id).await?).expect("json");
            v["id"] = serde_json::json!(s.id);
            v["restore_test"] = serde_json::to_value(&s.restore_test).expect("json");
            crate::outln!("{}{v}", if i == 0 { "" } else { "," });
        }
        crate::outln!("]");
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "{:<10} {:<20} {:<12} {:<18} {:>10} {:>10}  {:<13} paths",
        "id",
        "time",
        "source",
        "kind",
        "size",
        "added",
        "restore test"
    );
    for s in &listing.snapshots {
        print_row(s);
    }
    for u in listing.unreadable.iter().filter(|u| u.unsupported) {
        crate::outln!(
            "{:<10} unsupported: written by a newer lifeboat, upgrade lifeboat to read it",
            u.id.short()
        );
    }
    crate::outln!("{} snapshot(s)", listing.snapshots.len());
    Ok(ExitCode::SUCCESS)
}

fn print_row(s: &ListedSnapshot) {
    let test = match &s.restore_test {
        Some(v) if v.report.ok => format!("ok {:.1}s", v.report.restore_ms as f64 / 1000.0),
        Some(_) => "FAILED".to_string(),
        None => "-".to_string(),
    };
    let i = &s.info;
    crate::outln!(
        "{:<10} {:<20} {:<12} {:<18} {:>10} {:>10}  {:<13} {}",
        s.id.short(),
        short_time(&i.time),
        i.source,
        i.kind.as_str(),
        size(i.stats.bytes),
        size(i.stats.stored_bytes),
        test,
        i.paths.join(" ")
    );
}

pub async fn ls(ctx: &Context, a: LsArgs) -> Result<ExitCode> {
    let json = ctx.global.json;
    let req = LsRequest {
        snapshot: a.snapshot,
        path: a.path,
        source: a.source,
    };
    let mut first = true;
    let mut row = |n: &LsEntry| {
        if json {
            if first {
                crate::outln!("[");
            }
            let row = serde_json::to_value(n).expect("json");
            crate::outln!("{}{row}", if first { "" } else { "," });
            first = false;
        } else {
            let c = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
            };
            crate::outln!("{c}{:04o} {:>10}  {}", n.mode, size(n.size), n.path);
        }
    };
    listing::ls(&ctx.engine, req, &mut row).await?;
    if json {
        if first {
            crate::outln!("[");
        }
        crate::outln!("]");
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-01-31T02:00:00Z` (seconds) for tables; the full time is in `--json`.
pub fn short_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| t.to_string())
}
