//! `wal push`, `wal fetch`, `wal list`, `wal verify`: PostgreSQL's archive
//! and restore commands, the archive's listing and its check.

use super::Context;
use crate::args::{WalClusterArgs, WalCommand};
use anyhow::Result;
use lifeboat_engine::wal::{self, ClusterRef, FetchRequest, ListReport, PushRequest};
use std::process::ExitCode;

impl From<WalClusterArgs> for ClusterRef {
    fn from(a: WalClusterArgs) -> Self {
        ClusterRef {
            pgdata: a.pgdata,
            system_id: a.system_id,
        }
    }
}

pub async fn run(ctx: &Context, cmd: WalCommand) -> Result<ExitCode> {
    match cmd {
        WalCommand::Push(a) => {
            let r = wal::push(
                &ctx.engine,
                PushRequest {
                    path: a.path,
                    cluster: a.cluster.into(),
                },
            )
            .await?;
            if ctx.global.json {
                crate::output::json(&serde_json::to_value(&r).expect("json"));
            } else if !ctx.global.quiet && !r.stored {
                crate::outln!("wal push: {} was already archived (identical)", r.name);
            }
        }
        WalCommand::Fetch(a) => {
            let r = wal::fetch(
                &ctx.engine,
                FetchRequest {
                    name: a.name,
                    dest: a.dest,
                    cluster: a.cluster.into(),
                },
            )
            .await?;
            if ctx.global.json {
                crate::output::json(&serde_json::to_value(&r).expect("json"));
            }
        }
        WalCommand::List(a) => {
            let r = wal::list(&ctx.engine, a.into()).await?;
            print_list(ctx, &r);
        }
        WalCommand::Verify(a) => {
            let r = lifeboat_engine::wal_verify::verify(&ctx.engine, a.into()).await?;
            print_verify(ctx, &r);
            if !r.ok {
                return Ok(ExitCode::from(crate::exit::DAMAGED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_verify(ctx: &Context, r: &lifeboat_engine::wal_verify::VerifyReport) {
    if ctx.global.json {
        crate::output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
    crate::outln!(
        "system identifier {}: {} WAL file(s) read and checked",
        r.system_id,
        r.files_checked
    );
    for t in &r.timelines {
        crate::outln!(
            "timeline {}: {} segment(s), {} .. {}, continuous from {}",
            t.timeline,
            t.segments,
            t.first.as_deref().unwrap_or("-"),
            t.last.as_deref().unwrap_or("-"),
            t.checked_from.as_deref().unwrap_or("-")
        );
        for [a, b] in &t.missing {
            crate::outln!("  MISSING {a} .. {b}");
        }
    }
    for b in &r.bad_objects {
        crate::outln!("BAD {}: {}", b.name, b.error);
    }
    match &r.last_archived {
        Some(l) => crate::outln!(
            "last archived {} at {} ({} s ago)",
            l.name,
            l.time,
            l.age_seconds
        ),
        None => crate::outln!("no WAL archived"),
    }
    crate::outln!("{}", if r.ok { "ok" } else { "PROBLEMS FOUND" });
}

fn print_list(ctx: &Context, r: &ListReport) {
    if ctx.global.json {
        crate::output::json(&serde_json::to_value(r).expect("json"));
        return;
    }
    crate::outln!("system identifier {}", r.system_id);
    if r.timelines.is_empty() {
        crate::outln!("no WAL archived");
    }
    for t in &r.timelines {
        crate::outln!("timeline {}: {} segment(s)", t.timeline, t.segments);
        for [a, b] in &t.ranges {
            crate::outln!("  archived {a} .. {b}");
        }
        for [a, b] in &t.gaps {
            crate::outln!("  GAP after {a}, before {b}");
        }
        for f in &t.other_files {
            crate::outln!("  {f}");
        }
    }
}
