//! `forget`: print the retention plan (a table per source) and what was removed.

use super::Context;
use crate::args::{ForgetArgs, PolicyArgs};
use crate::output;
use anyhow::Result;
use lifeboat_engine::forget::{self, ForgetGroup, ForgetReport, ForgetRequest};
use lifeboat_engine::prune::{self, PruneRequest};
use lifeboat_engine::retention::Policy;
use std::process::ExitCode;

/// The flags' policy, when any `--keep-*` flag is given.
pub fn policy(a: &PolicyArgs) -> Option<Policy> {
    let given = a.keep_last.is_some()
        || a.keep_hourly.is_some()
        || a.keep_daily.is_some()
        || a.keep_weekly.is_some()
        || a.keep_monthly.is_some()
        || a.keep_yearly.is_some()
        || a.keep_within.is_some()
        || !a.keep_tags.is_empty();
    given.then(|| Policy {
        last: a.keep_last.unwrap_or(0),
        hourly: a.keep_hourly.unwrap_or(0),
        daily: a.keep_daily.unwrap_or(0),
        weekly: a.keep_weekly.unwrap_or(0),
        monthly: a.keep_monthly.unwrap_or(0),
        yearly: a.keep_yearly.unwrap_or(0),
        within: a.keep_within.clone(),
        keep_tags: a.keep_tags.clone(),
        pitr_days: None,
    })
}

pub async fn run(ctx: &Context, a: ForgetArgs) -> Result<ExitCode> {
    let req = ForgetRequest {
        source: a.source,
        policy: policy(&a.policy),
        dry_run: a.dry_run,
    };
    let report = forget::run(&ctx.engine, req).await?;
    if !a.prune {
        print(ctx, &report);
        return Ok(ExitCode::SUCCESS);
    }
    let pruned = prune::run(
        &ctx.engine,
        PruneRequest {
            dry_run: a.dry_run,
            ..PruneRequest::default()
        },
    )
    .await?;
    if ctx.global.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["prune"] = serde_json::to_value(&pruned).expect("json");
        output::json(&v);
    } else {
        print(ctx, &report);
        super::prune::print(ctx, &pruned);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a forget report (also used by `backup --forget`).
pub fn print(ctx: &Context, r: &ForgetReport) {
    if ctx.global.json {
        output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
    for g in &r.groups {
        print_group(g);
    }
    for id in &r.unreadable {
        eprintln!(
            "warning: snapshot {} cannot be read and is left alone (run `lifeboat verify`)",
            id.short()
        );
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    crate::outln!(
        "{verb} {} snapshot(s), kept {}{}",
        r.removed,
        r.kept,
        if r.dry_run {
            " (dry run: nothing deleted)"
        } else if r.removed > 0 {
            "; run `lifeboat prune` to reclaim their data"
        } else {
            ""
        }
    );
}

fn print_group(g: &ForgetGroup) {
    let policy = g
        .policy
        .as_ref()
        .map(Policy::describe)
        .unwrap_or_else(|| "no policy: everything kept".into());
    crate::outln!("{} ({}): {policy}", g.source, g.kind);
    crate::outln!("  {:<6}  {:<10} {:<20}  kept by", "", "id", "time");
    for s in &g.snapshots {
        crate::outln!(
            "  {:<6}  {:<10} {:<20}  {}",
            if s.keep { "keep" } else { "remove" },
            s.id.short(),
            super::snapshots::short_time(&s.time),
            s.reasons.join(", ")
        );
    }
    let kept = g.snapshots.iter().filter(|s| s.keep).count();
    crate::outln!("  {kept} kept, {} removed\n", g.snapshots.len() - kept);
}
