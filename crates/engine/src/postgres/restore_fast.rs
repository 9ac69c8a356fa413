//! The fast path of a logical restore: definitions, data, then indexes and
//! constraints, with the data read from the repository and loaded over
//! several connections at once.
//!
//! A default `pg_restore -d` loads every table over one connection and
//! builds every index one after the other. Here the archive's header and
//! TOC (a few KB, no table data) are read once and kept in a private
//! temporary file; then, each phase checked like a whole restore
//! ([`RestoreRun::finish`]):
//!
//! 1. pre-data: `pg_restore -L pre.list toc` (tables, types, functions);
//! 2. data: N `pg_restore -L data-k.list` at once, each fed on stdin the
//!    header and TOC followed only by its tables' data blocks, read straight
//!    from the repository at the offsets recorded at backup time
//!    ([`DataBlock`]); tables are spread over the N streams largest first,
//!    and entries without a block (sequence values) go with the first;
//! 3. post-data: `pg_restore -j N -L post.list toc` (indexes, constraints,
//!    triggers, ACLs; they carry no data, so the TOC file is all it needs).
//!
//! Sections follow pg_restore's own rule (an entry of no section belongs
//! to the one before it), and each list holds exactly the entries of its
//! section (of the selection, for a partial restore), so the three phases
//! restore what one `pg_restore` would. Every session raises
//! `maintenance_work_mem` for the index builds; nothing that needs a
//! superuser is set. The archive is never spooled to disk.
//!
//! Not handled here (the caller falls back to one streaming `pg_restore`
//! and says why, see [`refusal`]): snapshots without block offsets,
//! `--clean` (drops must run across sections), `--data-only`,
//! `--schema-only`, `--single-transaction` and `--jobs 1`.

use super::{LogicalMeta, DUMP_FILE};
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{ContentReader, Id, Repository};
use lifeboat_sources::postgres::archive::{read_toc, DataBlock};
use lifeboat_sources::postgres::child::{start_restore, RestoreRun};
use lifeboat_sources::postgres::toc::Section;
use lifeboat_sources::postgres::{ClientTools, PgTarget, RestoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Server settings for every restore session: memory for index builds
/// (per session; with N streams at most N builds run at once).
const SESSION_SETTINGS: &[&str] = &["maintenance_work_mem=512MB"];

/// Most parallel streams chosen automatically.
const MAX_AUTO_STREAMS: usize = 4;

/// Why the fast path does not apply to this restore of an archive of
/// `size` bytes, or `None` when it does.
pub(super) fn refusal(
    opts: &RestoreOptions,
    meta: &LogicalMeta,
    size: u64,
) -> Option<&'static str> {
    let Some(blocks) = meta.archive.data_blocks.as_deref() else {
        return Some("the snapshot predates recorded data block offsets");
    };
    if !blocks_fit(blocks, size) {
        Some("the recorded data block offsets do not fit the archive")
    } else if opts.clean {
        Some("--clean")
    } else if opts.data_only {
        Some("--data-only")
    } else if opts.schema_only {
        Some("--schema-only")
    } else if opts.single_transaction {
        Some("single transaction")
    } else if opts.replica_role {
        Some("data into existing tables with triggers held off")
    } else if !opts.data_only_schemas.is_empty() {
        Some("data into the platform's existing tables, in foreign-key order")
    } else if opts.jobs == 1 {
        Some("--jobs 1")
    } else {
        None
    }
}

/// Whether the recorded blocks can be the archive's: each starts after the
/// one before it (the first after the header), all within `size`. Offsets
/// that do not (a damaged or mis-recorded meta) would make byte ranges that
/// run backwards.
fn blocks_fit(blocks: &[DataBlock], size: u64) -> bool {
    let mut at = 0u64;
    blocks.iter().all(|b| {
        let fits = b.offset > at && b.offset < size;
        at = b.offset;
        fits
    })
}

/// Parallel streams for `jobs` (0 = automatic: the cores, at most 4).
pub(super) fn streams(jobs: u32) -> usize {
    if jobs > 0 {
        return jobs as usize;
    }
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, MAX_AUTO_STREAMS)
}

/// The archive as stored: its blobs with their stream offsets.
pub(super) struct StoredArchive<'a> {
    /// Content ids of the archive, in order.
    pub ids: &'a [Id],
    /// Its size in bytes.
    pub size: u64,
    /// Data blocks recorded at backup time, in stream order.
    pub blocks: &'a [DataBlock],
}

/// One data block to load: its entry and byte range in the stream.
#[derive(Debug, Clone, Copy)]
struct Range {
    dump_id: i64,
    start: u64,
    end: u64,
}

/// What each phase restores, as dump ids in archive order.
#[derive(Debug, Default)]
struct Plan {
    pre: Vec<i64>,
    /// Per stream: blocks in stream order, then entries without data.
    data: Vec<(Vec<Range>, Vec<i64>)>,
    post: Vec<i64>,
}

/// Restore the whole archive, or the `selected` dump ids, in three phases.
/// Returns the number of data streams used.
#[allow(clippy::too_many_arguments)]
pub(super) fn restore_fast(
    repo: &Arc<Repository>,
    tools: &ClientTools,
    target: &PgTarget,
    opts: &RestoreOptions,
    archive: &StoredArchive,
    selected: Option<&BTreeSet<i64>>,
    dir: &Path,
    progress: &Progress,
) -> Result<usize> {
    let starts = blob_starts(repo, archive.ids)?;
    let toc_end = archive.blocks.first().map_or(archive.size, |b| b.offset);
    let header = read_range(repo, archive.ids, &starts, 0, toc_end)?;
    let toc_path = dir.join(format!("toc-{DUMP_FILE}"));
    lifeboat_sources::process::create_private(&toc_path)
        .and_then(|mut f| f.write_all(&header))
        .map_err(EngineError::io(format!("writing {}", toc_path.display())))?;
    let streams = streams(opts.jobs);
    let plan = plan(&header, archive, selected, streams)?;
    let session = Session {
        tools,
        target,
        opts,
        dir,
    };
    progress.set_phase("restoring definitions");
    session.run_file("pre", &plan.pre, &toc_path, 1)?;
    progress.set_phase(format!("restoring data ({streams} streams)"));
    session.load_data(repo, archive.ids, &starts, &header, &plan.data, progress)?;
    progress.set_phase(format!("building indexes and constraints ({streams} jobs)"));
    session.run_file("post", &plan.post, &toc_path, streams as u32)?;
    Ok(streams)
}

/// Split the TOC into the three phases and the data over `streams`.
fn plan(
    header: &[u8],
    archive: &StoredArchive,
    selected: Option<&BTreeSet<i64>>,
    streams: usize,
) -> Result<Plan> {
    let toc = read_toc(header)
        .map_err(|e| corrupt(&format!("the archive's header and TOC do not parse: {e}")))?;
    let ranges: BTreeMap<i64, Range> = block_ranges(archive)
        .into_iter()
        .map(|r| (r.dump_id, r))
        .collect();
    let mut plan = Plan {
        data: vec![(Vec::new(), Vec::new()); streams],
        ..Plan::default()
    };
    let mut with_data = Vec::new();
    for entry in &toc {
        let id = entry.dump_id;
        if selected.is_some_and(|s| !s.contains(&id)) {
            continue;
        }
        match entry.section {
            Section::PreData => plan.pre.push(id),
            Section::PostData => plan.post.push(id),
            Section::Data => match ranges.get(&id) {
                Some(r) => with_data.push(*r),
                None => plan.data[0].1.push(id),
            },
        }
    }
    // Largest first, each to the stream with the fewest bytes so far.
    with_data.sort_by_key(|r| std::cmp::Reverse(r.end - r.start));
    let mut load = vec![0u64; streams];
    for r in with_data {
        let k = (0..streams).min_by_key(|&k| load[k]).unwrap_or(0);
        load[k] += r.end - r.start;
        plan.data[k].0.push(r);
    }
    for (blocks, _) in &mut plan.data {
        blocks.sort_by_key(|r| r.start);
    }
    Ok(plan)
}

/// Each block's byte range: to the next block's start, the last to the end.
fn block_ranges(archive: &StoredArchive) -> Vec<Range> {
    let ends = archive
        .blocks
        .iter()
        .skip(1)
        .map(|b| b.offset)
        .chain([archive.size]);
    archive
        .blocks
        .iter()
        .zip(ends)
        .map(|(b, end)| Range {
            dump_id: b.dump_id,
            start: b.offset,
            end,
        })
        .collect()
}

/// Stream offset of each blob's first byte (from the index, nothing read).
fn blob_starts(repo: &Repository, ids: &[Id]) -> Result<Vec<u64>> {
    let index = repo.index();
    let mut at = 0u64;
    let mut starts = Vec::with_capacity(ids.len());
    for id in ids {
        let loc = index
            .lookup(id)
            .ok_or_else(|| corrupt(&format!("blob {id} of the archive is not in the index")))?;
        starts.push(at);
        at += u64::from(loc.raw_len);
    }
    Ok(starts)
}

/// A reader of the stream's bytes `start..end`, fetching only the blobs
/// that hold them.
fn range_reader(
    repo: &Arc<Repository>,
    ids: &[Id],
    starts: &[u64],
    start: u64,
    end: u64,
) -> Result<impl Read> {
    let first = starts.partition_point(|&s| s <= start).saturating_sub(1);
    let last = starts.partition_point(|&s| s < end).max(first + 1);
    let mut reader = ContentReader::new(repo.clone(), ids[first..last].to_vec(), 2);
    let skip = start - starts.get(first).copied().unwrap_or(0);
    std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
        .map_err(|e| corrupt(&format!("reading the archive: {e}")))?;
    Ok(reader.take(end - start))
}

fn read_range(
    repo: &Arc<Repository>,
    ids: &[Id],
    starts: &[u64],
    start: u64,
    end: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    range_reader(repo, ids, starts, start, end)?
        .read_to_end(&mut out)
        .map_err(|e| corrupt(&format!("reading the archive: {e}")))?;
    if out.len() as u64 != end - start {
        return Err(corrupt("the archive is shorter than its recorded size"));
    }
    Ok(out)
}

fn corrupt(what: &str) -> EngineError {
    EngineError::Repo(lifeboat_repo::Error::Corrupt(what.to_string()))
}

/// What every phase's pg_restore shares.
struct Session<'a> {
    tools: &'a ClientTools,
    target: &'a PgTarget,
    opts: &'a RestoreOptions,
    dir: &'a Path,
}

impl Session<'_> {
    /// Starts pg_restore with these entries (`-L`), from `archive` or stdin.
    fn start(
        &self,
        name: &str,
        ids: &[i64],
        archive: Option<&Path>,
        jobs: u32,
    ) -> Result<RestoreRun> {
        let list = self.dir.join(format!("{name}.list"));
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        lifeboat_sources::process::create_private(&list)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(EngineError::io(format!("writing {}", list.display())))?;
        let opts = RestoreOptions {
            jobs,
            session_settings: SESSION_SETTINGS.iter().map(|s| s.to_string()).collect(),
            ..self.opts.clone()
        };
        Ok(start_restore(
            self.tools,
            self.target,
            &opts,
            Some(&list),
            archive,
        )?)
    }

    /// One pg_restore of `ids` from the TOC file (nothing to do when empty).
    fn run_file(&self, name: &str, ids: &[i64], toc: &Path, jobs: u32) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.start(name, ids, Some(toc), jobs)?.finish()?;
        Ok(())
    }

    /// The data phase: one pg_restore per stream, all at once; the first
    /// failure stops the others' feeding and is returned.
    fn load_data(
        &self,
        repo: &Arc<Repository>,
        ids: &[Id],
        starts: &[u64],
        header: &[u8],
        streams: &[(Vec<Range>, Vec<i64>)],
        progress: &Progress,
    ) -> Result<()> {
        let failed = AtomicBool::new(false);
        let mut runs = Vec::new();
        for (k, (blocks, rest)) in streams.iter().enumerate() {
            let list: Vec<i64> = blocks
                .iter()
                .map(|r| r.dump_id)
                .chain(rest.iter().copied())
                .collect();
            if !list.is_empty() {
                runs.push((self.start(&format!("data-{k}"), &list, None, 1)?, blocks));
            }
        }
        let results: Vec<(bool, Result<()>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|(run, blocks)| {
                    let failed = &failed;
                    scope.spawn(move || {
                        let r = self
                            .load_stream(run, repo, ids, starts, header, blocks, progress, failed);
                        // The first to fail is the cause; the others stop because of it.
                        let first = r.is_err() && !failed.swap(true, Ordering::Relaxed);
                        (first, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("restore stream panicked"))
                .collect()
        });
        let mut errors: Vec<_> = results.into_iter().filter(|(_, r)| r.is_err()).collect();
        errors.sort_by_key(|(first, _)| !first);
        errors.into_iter().next().map_or(Ok(()), |(_, r)| r)
    }

    /// Run one data stream's pg_restore, feeding it the header and its blocks.
    #[allow(clippy::too_many_arguments)]
    fn load_stream(
        &self,
        mut run: RestoreRun,
        repo: &Arc<Repository>,
        ids: &[Id],
        starts: &[u64],
        header: &[u8],
        blocks: &[Range],
        progress: &Progress,
        failed: &AtomicBool,
    ) -> Result<()> {
        let mut stdin = run
            .stdin()
            .expect("pg_restore reads the archive from stdin");
        let fed = feed(
            &mut stdin, repo, ids, starts, header, blocks, progress, failed,
        );
        drop(stdin);
        if matches!(fed, Err(Feed::Repo(_))) {
            run.kill();
        }
        let finished = run.finish();
        if let Err(Feed::Repo(e)) = fed {
            return Err(e);
        }
        finished?;
        if let Err(Feed::Stopped) = fed {
            return Err(EngineError::Source(
                "a parallel restore stream stopped because another failed".into(),
            ));
        }
        Ok(())
    }
}

/// Why feeding a stream ended early.
enum Feed {
    /// The repository could not deliver the data.
    Repo(EngineError),
    /// pg_restore stopped reading (its status says why), or another stream failed.
    Stopped,
}

/// Write the header, then each block's bytes from the repository.
#[allow(clippy::too_many_arguments)]
fn feed(
    out: &mut impl Write,
    repo: &Arc<Repository>,
    ids: &[Id],
    starts: &[u64],
    header: &[u8],
    blocks: &[Range],
    progress: &Progress,
    failed: &AtomicBool,
) -> std::result::Result<(), Feed> {
    out.write_all(header).map_err(|_| Feed::Stopped)?;
    let mut buf = vec![0u8; 256 * 1024];
    for r in blocks {
        let mut reader = range_reader(repo, ids, starts, r.start, r.end).map_err(Feed::Repo)?;
        let mut left = r.end - r.start;
        while left > 0 {
            if failed.load(Ordering::Relaxed) {
                return Err(Feed::Stopped);
            }
            let n = reader
                .read(&mut buf)
                .map_err(|e| Feed::Repo(corrupt(&format!("reading the archive: {e}"))))?;
            if n == 0 {
                return Err(Feed::Repo(corrupt(
                    "the archive is shorter than its recorded data blocks",
                )));
            }
            out.write_all(&buf[..n]).map_err(|_| Feed::Stopped)?;
            progress.add_bytes(n as u64);
            left -= n as u64;
        }
    }
    out.flush().map_err(|_| Feed::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta_with(blocks: serde_json::Value) -> LogicalMeta {
        serde_json::from_value(json!({
            "database": "shop", "server_version": "15.8", "server_version_num": 150008,
            "server_major": 15, "pg_dump_version": "15.8", "pg_dump_major": 15,
            "options": {}, "dump_bytes": 10000, "database_size": 1, "globals": true,
            "archive": {"archive_version": "1.14.0", "database": "shop", "server_version": "15.8",
                "dump_version": "15.8", "toc_entries": 3, "table_rows": {}, "table_bytes": {},
                "large_objects": 0, "data_blocks": blocks},
            "tables": [], "dependencies": {"tables": {}}
        }))
        .unwrap()
    }

    #[test]
    fn block_offsets_that_do_not_fit_the_archive_fall_back_to_one_stream() {
        let opts = RestoreOptions::default();
        let good = meta_with(json!([{"dump_id": 1, "offset": 100}, {"dump_id": 2, "offset": 500}]));
        assert_eq!(refusal(&opts, &good, 10000), None);
        for bad in [
            json!([{"dump_id": 1, "offset": 500}, {"dump_id": 2, "offset": 100}]),
            json!([{"dump_id": 1, "offset": 100}, {"dump_id": 2, "offset": 100}]),
            json!([{"dump_id": 1, "offset": 0}]),
            json!([{"dump_id": 1, "offset": 100}, {"dump_id": 2, "offset": 10000}]),
        ] {
            let meta = meta_with(bad.clone());
            let why = refusal(&opts, &meta, 10000);
            assert_eq!(
                why,
                Some("the recorded data block offsets do not fit the archive"),
                "{bad}"
            );
        }
    }
}
