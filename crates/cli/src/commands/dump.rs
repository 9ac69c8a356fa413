//! `dump export`.

use super::Context;
use crate::args::DumpCommand;
use crate::output::{self, size};
use anyhow::{bail, Context as _, Result};
use lifeboat_engine::postgres::{export_dump, ExportFormat};
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

pub async fn run(ctx: &Context, cmd: DumpCommand) -> Result<ExitCode> {
    let DumpCommand::Export(a) = cmd;
    let format = match a.format.as_str() {
        "custom" => ExportFormat::Custom,
        "plain" => ExportFormat::Plain,
        other => bail!("--format {other}: expected custom or plain"),
    };
    let repo = ctx.repo.open().await?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, a.source.as_deref()).await?;
    let bin_dir = super::backup::source_bin_dir(ctx, &snap.source);
    let out: Box<dyn std::io::Write + Send> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                // A plaintext dump: private from its first byte (not chmod after).
                .mode(0o600)
                .open(p)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", p.display())
                })?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let bytes = export_dump(&repo, &snap, format, out, bin_dir).await?;
    if let Some(p) = &a.output {
        if ctx.global.json {
            output::json(
                &serde_json::json!({"snapshot": id, "file": p, "format": a.format, "bytes": bytes}),
            );
        } else {
            eprintln!(
                "exported snapshot {} as {} to {} ({})",
                id.short(),
                a.format,
                p.display(),
                size(bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
