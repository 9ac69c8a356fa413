//! `copy`: print what was copied to the other repository.

use super::Context;
use crate::args::CopyArgs;
use crate::output::{self, size};
use anyhow::Result;
use lifeboat_engine::copy::{self, CopyReport, CopyRequest};
use std::process::ExitCode;

pub async fn run(ctx: &Context, a: CopyArgs) -> Result<ExitCode> {
    let req = CopyRequest {
        target: a.to,
        source: a.source,
        snapshots: a.snapshots,
    };
    let report = copy::copy(&ctx.engine, req).await?;
    if ctx.global.json {
        output::json(&serde_json::to_value(&report).expect("json"));
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a copy report (also after `backup` of a source with `copy_to`).
pub fn print(r: &CopyReport) {
    for c in &r.copied {
        crate::outln!(
            "copy: snapshot {} ({} {}) copied to {} as {}",
            c.from.short(),
            c.source,
            c.time,
            r.target,
            c.to.short()
        );
    }
    crate::outln!(
        "copy: {} snapshot(s) copied to {}, {} already there; {} new blobs, {} added to {}",
        r.copied.len(),
        r.target,
        r.already_there,
        r.new_blobs,
        size(r.stored_bytes),
        r.target
    );
}
