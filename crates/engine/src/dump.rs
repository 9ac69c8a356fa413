//! The dump export use case: a logical snapshot as a file stock PostgreSQL
//! tools accept (`custom` for pg_restore, `plain` for psql).

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::keys::create_private;
use crate::postgres::{export_dump, ExportFormat};
use lifeboat_repo::Id;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

impl ExportFormat {
    /// The format named `name` (`custom` or `plain`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "custom" => Ok(ExportFormat::Custom),
            "plain" => Ok(ExportFormat::Plain),
            other => Err(EngineError::Other(format!(
                "--format {other}: expected custom or plain"
            ))),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Custom => "custom",
            ExportFormat::Plain => "plain",
        }
    }
}

/// Where the export goes.
pub enum ExportTo {
    /// A new file, created 0600 (a dump is plaintext); an existing one is refused,
    /// and the file is removed again when the export fails.
    File(PathBuf),
    /// A stream (e.g. standard output).
    Writer(Box<dyn Write + Send>),
}

/// What to export.
pub struct ExportRequest {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// With `latest`: the latest of this source.
    pub source: Option<String>,
    /// Output format.
    pub format: ExportFormat,
    /// Destination.
    pub to: ExportTo,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Snapshot exported.
    pub snapshot: Id,
    /// The file written, when exporting to a file.
    pub file: Option<PathBuf>,
    /// The format's name.
    pub format: &'static str,
    /// Bytes written.
    pub bytes: u64,
}

/// Export a logical snapshot.
pub async fn export(ctx: &Ctx, req: ExportRequest) -> Result<ExportReport> {
    let repo = ctx.repo.open().await?;
    let (id, snap) = repo
        .find_snapshot(&req.snapshot, req.source.as_deref())
        .await?;
    let bin_dir = ctx.source_bin_dir(&snap.source);
    let (out, file): (Box<dyn Write + Send>, _) = match req.to {
        ExportTo::File(p) => (
            Box::new(std::io::BufWriter::new(create_private(&p)?)),
            Some(p),
        ),
        ExportTo::Writer(w) => (w, None),
    };
    let bytes = match export_dump(&repo, &snap, req.format, out, bin_dir).await {
        Ok(n) => n,
        Err(e) => {
            // A truncated dump must not be left behind looking like one: a
            // partial plain script would run in psql without complaint, and
            // the retry would be refused because the file exists. The file
            // was created by this call (create_new), so removing it is safe.
            if let Some(p) = &file {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    Ok(ExportReport {
        snapshot: id,
        file,
        format: req.format.name(),
        bytes,
    })
}
