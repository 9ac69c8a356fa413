//! `dump export`.

use super::Context;
use crate::args::DumpCommand;
use crate::output::{self, size};
use anyhow::Result;
use lifeboat_engine::dump::{self, ExportRequest, ExportTo};
use lifeboat_engine::postgres::ExportFormat;
use std::process::ExitCode;

pub async fn run(ctx: &Context, cmd: DumpCommand) -> Result<ExitCode> {
    let DumpCommand::Export(a) = cmd;
    let req = ExportRequest {
        snapshot: a.snapshot,
        source: a.source,
        format: ExportFormat::from_name(&a.format)?,
        to: match a.output {
            Some(p) => ExportTo::File(p),
            None => ExportTo::Writer(Box::new(std::io::stdout())),
        },
    };
    let r = dump::export(&ctx.engine, req).await?;
    if let Some(p) = &r.file {
        if ctx.global.json {
            output::json(&serde_json::to_value(&r).expect("json"));
        } else {
            eprintln!(
                "exported snapshot {} as {} to {} ({})",
                r.snapshot.short(),
                r.format,
                p.display(),
                size(r.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
