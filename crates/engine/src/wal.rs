//! WAL archiving use cases: `wal push` (PostgreSQL's `archive_command`),
//! `wal fetch` (its `restore_command`) and `wal list`.
//!
//! PostgreSQL's contract: push returns success only once the file is
//! durable in the repository; fetch fails for a file that is not archived
//! and never leaves a partial file at the destination (temp file in the
//! same directory, fsync, rename). Both open the repository without loading
//! the blob index; with a raw key file no KDF runs.
//!
//! WAL is namespaced by the cluster's system identifier, read from
//! `global/pg_control` of the data directory (PostgreSQL runs both commands
//! in the data directory, so by default that is the working directory).

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use lifeboat_repo::wal::{self, PushOutcome, WalName};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which cluster the WAL belongs to.
#[derive(Debug, Clone, Default)]
pub struct ClusterRef {
    /// Its data directory (`global/pg_control` gives the system identifier).
    pub pgdata: Option<PathBuf>,
    /// The system identifier itself (wins over `pgdata`).
    pub system_id: Option<u64>,
}

impl ClusterRef {
    /// The system identifier; `near` is a path under `pg_wal/` (PostgreSQL's
    /// `%p`) whose data directory is used when none is given.
    pub fn resolve(&self, near: Option<&Path>) -> Result<u64> {
        if let Some(id) = self.system_id {
            return Ok(id);
        }
        let dir = match &self.pgdata {
            Some(d) => d.clone(),
            None => data_dir_of(near),
        };
        system_id(&dir)
    }
}

/// The data directory a `%p` path lies in: the parent of its `pg_wal`, or
/// the working directory.
fn data_dir_of(near: Option<&Path>) -> PathBuf {
    let wal_dir = near.and_then(Path::parent);
    match wal_dir {
        Some(w) if w.file_name().is_some_and(|n| n == "pg_wal") => match w.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        _ => PathBuf::from("."),
    }
}

/// The system identifier of the cluster at `pgdata`: the first 8 bytes of
/// `global/pg_control` (native byte order, as PostgreSQL writes it).
pub fn system_id(pgdata: &Path) -> Result<u64> {
    let path = pgdata.join("global/pg_control");
    let bytes = std::fs::read(&path).map_err(|e| {
        EngineError::Config(format!(
            "cannot read {} for the cluster's system identifier: {e}; run in the data directory, or give --pgdata DIR or --system-id N",
            path.display()
        ))
    })?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EngineError::Config(format!("{}: too short", path.display())))?;
    Ok(u64::from_ne_bytes(first))
}

/// `wal push`: archive one file.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The file (PostgreSQL's `%p`).
    pub path: PathBuf,
    /// Its cluster.
    pub cluster: ClusterRef,
}

/// What `wal push` did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The WAL file name.
    pub name: String,
    /// The storage key.
    pub key: String,
    /// Bytes of WAL.
    pub bytes: u64,
    /// False when an identical file was already archived.
    pub stored: bool,
}

/// Archive one WAL file; returns when it is durable in the repository.
pub async fn push(ctx: &Ctx, req: PushRequest) -> Result<PushReport> {
    let name = file_name(&req.path)?;
    let system_id = req.cluster.resolve(Some(&req.path))?;
    let data = std::fs::read(&req.path)
        .map_err(EngineError::io(format!("read {}", req.path.display())))?;
    let repo = ctx.repo.open_without_index().await?;
    let outcome = wal::push(&repo, system_id, &name, &data).await?;
    Ok(PushReport {
        key: wal::key(system_id, &name),
        name: name.as_str().into(),
        bytes: data.len() as u64,
        stored: outcome == PushOutcome::Stored,
    })
}

fn file_name(path: &Path) -> Result<WalName> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EngineError::Config(format!("{}: no file name", path.display())))?;
    Ok(WalName::parse(name)?)
}

/// `wal fetch`: restore one file.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The WAL file name (PostgreSQL's `%f`).
    pub name: String,
    /// Where to write it (PostgreSQL's `%p`).
    pub dest: PathBuf,
    /// Its cluster.
    pub cluster: ClusterRef,
}

/// What `wal fetch` did.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The WAL file name.
    pub name: String,
    /// Bytes written.
    pub bytes: u64,
}

/// Fetch one archived WAL file into `dest`, atomically: the file appears
/// whole or not at all.
pub async fn fetch(ctx: &Ctx, req: FetchRequest) -> Result<FetchReport> {
    let name = WalName::parse(&req.name)?;
    let system_id = req.cluster.resolve(Some(&req.dest))?;
    let repo = ctx.repo.open_without_index().await?;
    let data = wal::fetch(&repo, system_id, &name).await?;
    write_atomically(&req.dest, &data)?;
    Ok(FetchReport {
        name: name.as_str().into(),
        bytes: data.len() as u64,
    })
}

/// Write `data` at `dest` through a temp file in the same directory
/// (fsync'd, renamed over `dest`, directory fsync'd).
fn write_atomically(dest: &Path, data: &[u8]) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let ctx = || format!("write {}", dest.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".lifeboat-fetch-")
        .tempfile_in(&dir)
        .map_err(EngineError::io(ctx()))?;
    tmp.write_all(data).map_err(EngineError::io(ctx()))?;
    tmp.as_file().sync_all().map_err(EngineError::io(ctx()))?;
    tmp.persist(dest)
        .map_err(|e| EngineError::io(ctx())(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(EngineError::io(format!("fsync {}", dir.display())))?;
    Ok(())
}

/// `wal list`: the archived files of one cluster, by timeline.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    /// The cluster's system identifier.
    pub system_id: u64,
    /// One entry per timeline, in order.
    pub timelines: Vec<TimelineReport>,
}

/// The archived WAL of one timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    /// 8 hex digits.
    pub timeline: String,
    /// Runs of consecutive segments, `[first, last]`.
    pub ranges: Vec<[String; 2]>,
    /// Gaps as `[after, before]`: the segments strictly between these two
    /// archived ones are missing.
    pub gaps: Vec<[String; 2]>,
    /// Number of segments archived.
    pub segments: usize,
    /// History files, backup labels and partial segments.
    pub other_files: Vec<String>,
}

/// List a cluster's archived WAL: per timeline, the ranges and the gaps.
pub async fn list(ctx: &Ctx, cluster: ClusterRef) -> Result<ListReport> {
    let system_id = cluster.resolve(None)?;
    let repo = ctx.repo.open_without_index().await?;
    let names = wal::list(&repo, system_id).await?;
    let segment_size = segment_size(&repo, system_id, &names).await?;
    Ok(ListReport {
        system_id,
        timelines: by_timeline(&names, segment_size),
    })
}

/// The cluster's WAL segment size: the plaintext length of an archived
/// segment (every segment file is exactly one segment long), 16 MiB when
/// none is archived.
pub(crate) async fn segment_size(
    repo: &lifeboat_repo::Repository,
    system_id: u64,
    names: &[WalName],
) -> Result<u64> {
    let Some(first) = names.iter().find(|n| n.is_segment()) else {
        return Ok(DEFAULT_SEGMENT_SIZE);
    };
    Ok(wal::header(repo, system_id, first)
        .await?
        .map_or(DEFAULT_SEGMENT_SIZE, |h| h.len))
}

/// PostgreSQL's default WAL segment size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

fn by_timeline(names: &[WalName], segment_size: u64) -> Vec<TimelineReport> {
    let mut out: Vec<TimelineReport> = Vec::new();
    for n in names {
        if out.last().is_none_or(|t| t.timeline != n.timeline()) {
            out.push(TimelineReport {
                timeline: n.timeline().into(),
                ranges: Vec::new(),
                gaps: Vec::new(),
                segments: 0,
                other_files: Vec::new(),
            });
        }
        let t = out.last_mut().expect("pushed above");
        if !n.is_segment() {
            t.other_files.push(n.as_str().into());
            continue;
        }
        t.segments += 1;
        add_segment(t, n, segment_size);
    }
    out
}

/// Extend the last range when `name` is the segment right after it (by
/// absolute segment number, so `…000000FF` is followed by the next log's
/// `…00000000` with 16 MiB segments and by nothing else), else record the
/// gap and start a new range.
fn add_segment(t: &mut TimelineReport, name: &WalName, segment_size: u64) {
    let Some(last) = t.ranges.last_mut() else {
        t.ranges.push([name.as_str().into(), name.as_str().into()]);
        return;
    };
    let prev = WalName::parse(&last[1])
        .ok()
        .and_then(|p| p.segment_number(segment_size));
    let cur = name.segment_number(segment_size);
    if prev.is_some() && prev.map(|p| p + 1) == cur {
        last[1] = name.as_str().into();
    } else {
        t.gaps.push([last[1].clone(), name.as_str().into()]);
        t.ranges.push([name.as_str().into(), name.as_str().into()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(names: &[&str], segment_size: u64) -> TimelineReport {
        let names: Vec<WalName> = names.iter().map(|n| WalName::parse(n).unwrap()).collect();
        by_timeline(&names, segment_size).remove(0)
    }

    #[test]
    fn the_segment_after_ff_is_the_next_logs_first_and_nothing_else() {
        let r = report(
            &[
                "0000000100000000000000FE",
                "0000000100000000000000FF",
                "000000010000000100000000",
            ],
            DEFAULT_SEGMENT_SIZE,
        );
        assert_eq!(r.gaps, Vec::<[String; 2]>::new());
        assert_eq!(r.ranges.len(), 1);
        // Segments 06..FF of log 0 are missing: a gap, not a range.
        let r = report(
            &["000000010000000000000005", "000000010000000100000000"],
            DEFAULT_SEGMENT_SIZE,
        );
        assert_eq!(
            r.gaps,
            vec![[
                "000000010000000000000005".to_string(),
                "000000010000000100000000".to_string()
            ]]
        );
    }

    #[test]
    fn other_segment_sizes_have_other_log_boundaries() {
        // 1 GiB segments: 4 per log, so 03 is the last of a log.
        let gib = 1 << 30;
        let r = report(
            &["000000010000000000000003", "000000010000000100000000"],
            gib,
        );
        assert!(r.gaps.is_empty(), "{r:?}");
        let r = report(
            &["0000000100000000000000FF", "000000010000000100000000"],
            gib,
        );
        assert_eq!(r.gaps.len(), 1);
    }
}
