//! `dump export`: a file stock PostgreSQL tools accept.
//!
//! `custom` writes the stored archive byte for byte (`pg_restore` reads it);
//! `plain` pipes it through the matching `pg_restore -f -` to produce the SQL
//! script `psql` runs.

use super::{file_content, LogicalMeta, DUMP_FILE};
use crate::error::{EngineError, Result};
use lifeboat_repo::{Repository, Snapshot};
use lifeboat_sources::postgres::child::start_to_sql;
use lifeboat_sources::postgres::ClientTools;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// pg_dump custom format (`pg_restore` input).
    Custom,
    /// Plain SQL (`psql` input).
    Plain,
}

/// Write the snapshot's dump to `out` (or stdout); returns bytes written.
pub async fn export_dump(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    format: ExportFormat,
    out: Box<dyn Write + Send>,
    bin_dir: Option<PathBuf>,
) -> Result<u64> {
    let meta = LogicalMeta::of(snap)?;
    let (ids, _) = file_content(repo, snap, DUMP_FILE).await?.ok_or_else(|| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "snapshot has no {DUMP_FILE}"
        )))
    })?;
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || match format {
        ExportFormat::Custom => copy_blobs(&repo, ids, out),
        ExportFormat::Plain => {
            let tools = ClientTools::find(meta.pg_dump_major, bin_dir.as_deref())?;
            to_plain(&repo, &tools, ids, out)
        }
    })
    .await
    .expect("export thread panicked")
}

fn copy_blobs(
    repo: &Arc<Repository>,
    ids: Vec<lifeboat_repo::Id>,
    mut out: Box<dyn Write + Send>,
) -> Result<u64> {
    super::write_blobs(repo, &ids, &mut out, None)?.map_err(EngineError::io("writing the export"))
}

fn to_plain(
    repo: &Arc<Repository>,
    tools: &ClientTools,
    ids: Vec<lifeboat_repo::Id>,
    mut out: Box<dyn Write + Send>,
) -> Result<u64> {
    let mut child = start_to_sql(tools)?;
    let mut stdin = child.stdin().expect("pg_restore --file=- reads stdin");
    let repo = repo.clone();
    let feeder = std::thread::spawn(move || super::write_blobs(&repo, &ids, &mut stdin, None));
    let mut stdout = child.stdout().expect("pg_restore --file=- writes stdout");
    let copied = std::io::copy(&mut stdout, &mut out).and_then(|n| out.flush().map(|()| n));
    drop(stdout);
    if copied.is_err() {
        child.kill();
    }
    // The repository failing is why pg_restore saw a truncated archive: report that first.
    let fed = feeder.join().expect("feeder thread panicked")?;
    child.finish().map_err(|e| {
        EngineError::Source(format!(
            "pg_restore could not convert the archive to SQL: {e}"
        ))
    })?;
    let n = copied.map_err(EngineError::io("writing the export"))?;
    fed.map_err(EngineError::io("feeding pg_restore"))?;
    Ok(n)
}
