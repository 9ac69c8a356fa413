//! `migrations check`: the migrations against the live database.

use super::Context;
use crate::args::MigrationsCommand;
use crate::exit;
use crate::output;
use anyhow::Result;
use lifeboat_engine::migrations::{self, DriftKind, MigrationsCheckReport, MigrationsCheckRequest};
use std::process::ExitCode;

pub async fn run(ctx: &Context, m: MigrationsCommand) -> Result<ExitCode> {
    let MigrationsCommand::Check(a) = m;
    let req = MigrationsCheckRequest {
        source: a.source,
        dir: a.dir,
    };
    let r = migrations::check(&ctx.engine, req).await?;
    if ctx.global.json {
        output::json(&serde_json::to_value(&r)?);
    } else {
        print(&r);
    }
    Ok(ExitCode::from(if r.ok { exit::OK } else { exit::DRIFT }))
}

fn print(r: &MigrationsCheckReport) {
    crate::outln!(
        "{} migrations applied to a scratch database, {} objects compared with source {}",
        r.migrations.len(),
        r.objects,
        r.source
    );
    for d in &r.drifts {
        let what = match d.kind {
            DriftKind::Missing => "missing (a migration never applied)",
            DriftKind::Extra => "extra (no migration creates it)",
            DriftKind::Different => "different",
        };
        crate::outln!("  {}: {what}", d.object);
        for l in &d.detail {
            crate::outln!("      {l}");
        }
    }
    crate::outln!(
        "{}",
        if r.ok {
            "no drift: the migrations build the live schema"
        } else {
            "DRIFT between the migrations and the live database"
        }
    );
}
