//! `prune`: print what was (or, with `--dry-run`, would be) freed.

use super::Context;
use crate::args::PruneArgs;
use crate::output::{self, size};
use anyhow::Result;
use lifeboat_engine::prune::{self, PruneReport, PruneRequest};
use std::process::ExitCode;

pub async fn run(ctx: &Context, a: PruneArgs) -> Result<ExitCode> {
    let report = prune::run(
        &ctx.engine,
        PruneRequest {
            dry_run: a.dry_run,
            repack_threshold: a.repack_threshold,
            ..PruneRequest::default()
        },
    )
    .await?;
    print(ctx, &report);
    Ok(ExitCode::SUCCESS)
}

/// Print a prune report (also after `forget --prune` and `backup --forget`).
pub fn print(ctx: &Context, r: &PruneReport) {
    if ctx.global.json {
        output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    crate::outln!(
        "prune: {} snapshot(s) reference {} blob(s) in {} pack(s)",
        r.snapshots,
        r.referenced_blobs,
        r.packs
    );
    crate::outln!(
        "prune: {verb} {} in {} unreferenced pack(s) and {} unindexed pack(s) older than the grace period{}",
        size(r.bytes_freed),
        r.unreferenced_packs,
        r.orphan_packs,
        if r.dry_run { " (dry run: nothing deleted)" } else { "" }
    );
    if r.repacked_packs > 0 {
        let verb = if r.dry_run {
            "would repack"
        } else {
            "repacked"
        };
        crate::outln!(
            "prune: {verb} {} pack(s) more than {}% unreferenced: {} freed, {} of referenced blobs copied into new packs",
            r.repacked_packs,
            r.repack_threshold,
            size(r.repack_bytes_freed),
            size(r.repack_bytes_copied)
        );
    }
    if r.partly_used_packs > 0 {
        crate::outln!(
            "prune: {} partly used pack(s) at or below the {}% repack threshold kept whole, holding {} unreferenced",
            r.partly_used_packs,
            r.repack_threshold,
            size(r.bytes_in_partly_used)
        );
    }
    if r.unmarked > 0 {
        crate::outln!(
            "prune: {} pack(s) kept because backups running meanwhile used them",
            r.unmarked
        );
    }
}
