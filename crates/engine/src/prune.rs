//! `prune`: delete the packs no snapshot references, safely while backups
//! run, by the protocol of docs/FORMAT.md §18:
//!
//! 0. set the `tombstones` ro-compatible feature (older builds stop writing);
//! 1. mark: walk every snapshot's trees into a set of referenced blob ids
//!    (sized by the referenced blobs, never a copy of the index); a pack
//!    none of whose blobs is referenced is garbage; write a tombstone;
//! 2. wait until every backup lock listed after the tombstone is gone or
//!    stale (judged by the storage's clock);
//! 3. re-check: reload the index, walk the snapshots written meanwhile and
//!    unmark every pack holding a blob they reach;
//! 4. rewrite each index file naming a marked pack without it (new file
//!    first, then the old one deleted), delete the marked packs, then the
//!    tombstone; also `.tmp-*` leftovers and unindexed packs older than the
//!    grace period.
//!
//! A crash anywhere leaves a readable repository; the next prune finishes
//! the job (packs of an old tombstone that are no longer indexed are
//! deleted at once). Only one prune runs at a time (`crate::prune_lock`).
//! Packs more unreferenced than the repack threshold are tombstoned too and
//! their referenced blobs copied into new packs after step 3
//! ([`crate::repack`]); partly used packs below it are kept whole.

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::prune_lock;
pub use crate::prune_lock::IfBusy;
use crate::repack;
use lifeboat_repo::index::{decode_index_file, encode_index_file};
use lifeboat_repo::lock::BackupLock;
use lifeboat_repo::tombstone::{self, Tombstone, TOMBSTONE_VERSION};
use lifeboat_repo::{layout, lock, Error as RepoError, Id, Repository};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Unindexed packs younger than this may belong to a backup still running
/// (it writes its index file every 64 packs, and at the end).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// How often prune looks at the backup locks it waits for.
const LOCK_POLL: Duration = Duration::from_secs(5);

/// Test-only: seconds to use instead of [`ORPHAN_GRACE`] (documented as
/// such in docs/CLI.md; never set it in production).
pub const TEST_GRACE_ENV: &str = "LIFEBOAT_TEST_PRUNE_GRACE_SECS";

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// Report what would be freed, change nothing.
    pub dry_run: bool,
    /// When another prune runs: fail (`prune`) or wait (`backup --forget`).
    pub if_busy: IfBusy,
    /// Repack packs with more than this percent unreferenced; `None`:
    /// `prune.repack_threshold` of the config, else
    /// [`repack::DEFAULT_THRESHOLD_PERCENT`]; 100 never repacks.
    pub repack_threshold: Option<f64>,
}

/// What prune did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Blobs they reference.
    pub referenced_blobs: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Indexed packs deleted (or to delete): no snapshot references them.
    pub unreferenced_packs: usize,
    /// Unindexed packs older than the grace period deleted (or to delete).
    pub orphan_packs: usize,
    /// Bytes those packs hold.
    pub bytes_freed: u64,
    /// Packs kept whole although part of their blobs is unreferenced (at
    /// or below the repack threshold).
    pub partly_used_packs: usize,
    /// Unreferenced bytes in those packs.
    pub bytes_in_partly_used: u64,
    /// The repack threshold used, percent unreferenced.
    pub repack_threshold: f64,
    /// Packs repacked (or to repack): above the threshold.
    pub repacked_packs: usize,
    /// Unreferenced bytes repacking frees (not in `bytes_freed`).
    pub repack_bytes_freed: u64,
    /// Referenced bytes repacking copies into new packs.
    pub repack_bytes_copied: u64,
    /// Blobs written into new packs by the repack.
    pub repacked_blobs: u64,
    /// Packs unmarked at the re-check (a backup used them meanwhile).
    pub unmarked: usize,
    /// Index files rewritten.
    pub index_files_rewritten: usize,
    /// Temp files removed.
    pub temp_files_removed: usize,
    /// Backup locks waited for.
    pub locks_waited: usize,
}

/// Run prune ([`PruneRequest::dry_run`]: only report). A real prune holds
/// the prune lock throughout ([`crate::prune_lock`]) and releases it at the
/// end, also on failure.
pub async fn run(ctx: &Ctx, req: PruneRequest) -> Result<PruneReport> {
    let threshold = threshold(ctx, req.repack_threshold)?;
    let repo = ctx.repo.open().await?;
    if req.dry_run {
        return prune(&repo, None, threshold).await;
    }
    repo.ensure_writable()?;
    let lock = prune_lock::acquire(&repo, req.if_busy).await?;
    let result = prune(&repo, Some(&lock), threshold).await;
    let released = lock.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// The protocol's steps; `lock` is `None` for a dry run (nothing written).
async fn prune(
    repo: &Arc<Repository>,
    lock: Option<&BackupLock>,
    threshold: f64,
) -> Result<PruneReport> {
    let repo = repo.clone();
    let mut report = PruneReport {
        dry_run: lock.is_none(),
        repack_threshold: threshold,
        ..PruneReport::default()
    };
    let old_tombstones = tombstone::list(&repo).await?;
    let (mut walked, mut referenced) = mark(&repo).await?;
    report.snapshots = walked.len();
    let mut marked = garbage(&repo, &referenced, &mut report);
    let repack = plan_repack(&repo, &referenced, threshold, &mut report);
    let mut orphans = orphans(&repo, &old_tombstones, grace()).await?;
    report.orphan_packs = orphans.len();
    report.bytes_freed += orphans.iter().map(|(_, size)| size).sum::<u64>();
    report.referenced_blobs = referenced.len();
    let Some(lock) = lock else {
        return Ok(report);
    };
    repo.add_ro_compatible_feature(tombstone::FEATURE).await?;
    let mut all: Vec<Id> = marked.iter().copied().collect();
    all.extend(orphans.iter().map(|(id, _)| *id));
    all.extend(repack.iter().copied());
    all.sort();
    let (mut stone, stone_key) = write_tombstone(&repo, all.clone()).await?;
    test_pause("marked").await;
    report.locks_waited = wait_for_backups(&repo, &stone_key).await?;
    report.unmarked = recheck(&repo, &mut walked, &mut referenced, &mut marked).await?;
    // An unindexed pack whose index file a backup wrote meanwhile stays.
    let indexed: HashSet<Id> = repo.index().packs().iter().map(|p| p.id).collect();
    let before = orphans.len();
    orphans.retain(|(id, _)| !indexed.contains(id));
    report.unmarked += before - orphans.len();
    report.orphan_packs = orphans.len();
    if report.unmarked > 0 {
        let keep: Vec<Id> = all
            .into_iter()
            .filter(|p| {
                marked.contains(p) || repack.contains(p) || orphans.iter().any(|(o, _)| o == p)
            })
            .collect();
        stone = replace_tombstone(&repo, stone, keep).await?;
        report.unreferenced_packs = marked.len();
        report.bytes_freed =
            packs_bytes(&repo, &marked) + orphans.iter().map(|(_, s)| s).sum::<u64>();
    }
    test_pause("rechecked").await;
    lock.ensure_held()?;
    let referenced = Arc::new(referenced);
    report.repacked_blobs = copy_live(&repo, &marked, &repack, &referenced).await?;
    test_pause("repacked").await;
    lock.ensure_held()?;
    marked.extend(repack.iter().copied());
    report.index_files_rewritten = rewrite_index(&repo, &marked).await?;
    delete_packs(&repo, marked.iter().chain(orphans.iter().map(|(id, _)| id))).await?;
    delete_object(&repo, layout::TOMBSTONES, &stone).await?;
    for (id, _) in &old_tombstones {
        delete_object(&repo, layout::TOMBSTONES, id).await?;
    }
    report.temp_files_removed = repo
        .storage()
        .remove_stale_temp(lifeboat_storage::STALE_TEMP_AGE)
        .await
        .map_err(RepoError::from)?;
    late_snapshots(&repo, &walked, &referenced).await?;
    Ok(report)
}

/// Test-only: at each named stage, when `<dir>/<stage>.pause` exists, prune
/// writes `<dir>/<stage>.reached` and waits until the `.pause` file is gone
/// (documented in docs/CLI.md; never set it in production).
pub const TEST_PAUSE_ENV: &str = "LIFEBOAT_TEST_PRUNE_PAUSE";

async fn test_pause(stage: &str) {
    let Some(dir) = std::env::var_os(TEST_PAUSE_ENV).map(std::path::PathBuf::from) else {
        return;
    };
    let pause = dir.join(format!("{stage}.pause"));
    if !pause.exists() {
        return;
    }
    let _ = std::fs::write(dir.join(format!("{stage}.reached")), b"");
    while pause.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// §18 step 3's residual risk: snapshots listed after the packs were
/// deleted that neither the mark nor the re-check walked. One that reaches
/// a blob the index no longer holds (or a tree that cannot be read) was
/// written by a backup whose lock went stale while its snapshot `put`
/// hung; it is reported as damaged (exit 12) instead of staying silent.
async fn late_snapshots(
    repo: &Arc<Repository>,
    walked: &HashSet<Id>,
    referenced: &HashSet<Id>,
) -> Result<()> {
    repo.load_index().await?;
    let (snaps, _) = repo.snapshots_checked().await?;
    let mut damaged = Vec::new();
    for (id, info) in snaps.iter().filter(|(id, _)| !walked.contains(id)) {
        let mut reached = HashSet::new();
        let whole = match walk_new(repo, info.tree, referenced, &mut reached).await {
            Ok(()) => {
                let index = repo.index();
                reached.iter().all(|b| index.contains(b))
            }
            Err(_) => false,
        };
        if !whole {
            damaged.push(id.short());
        }
    }
    if damaged.is_empty() {
        return Ok(());
    }
    Err(EngineError::Repo(RepoError::Corrupt(format!(
        "prune finished, but snapshot(s) {} were written after its re-check (by backups whose lock went stale while they ran) and reach data it deleted: they are damaged; run `lifeboat verify`, `lifeboat forget` them and back those sources up again",
        damaged.join(", ")
    ))))
}

/// The repack threshold: the request's, else the config's, else the default.
fn threshold(ctx: &Ctx, asked: Option<f64>) -> Result<f64> {
    let t = asked
        .or_else(|| ctx.config.as_ref().and_then(|c| c.prune.repack_threshold))
        .unwrap_or(repack::DEFAULT_THRESHOLD_PERCENT);
    if !(0.0..=100.0).contains(&t) {
        return Err(EngineError::Config(format!(
            "repack threshold {t}: give a percentage from 0 to 100 (100 never repacks)"
        )));
    }
    Ok(t)
}

/// Packs above the threshold; counted in the report (and out of the
/// partly used packs kept whole).
fn plan_repack(
    repo: &Repository,
    referenced: &HashSet<Id>,
    threshold: f64,
    report: &mut PruneReport,
) -> HashSet<Id> {
    let (packs, free, copy) = repack::candidates(&repo.index(), referenced, threshold);
    report.repacked_packs = packs.len();
    report.repack_bytes_freed = free;
    report.repack_bytes_copied = copy;
    report.partly_used_packs -= packs.len();
    report.bytes_in_partly_used -= free;
    packs
}

/// Copy the live blobs of the packs to repack, with every pack about to be
/// deleted left out of the writer's index.
async fn copy_live(
    repo: &Arc<Repository>,
    marked: &HashSet<Id>,
    repack: &HashSet<Id>,
    referenced: &Arc<HashSet<Id>>,
) -> Result<u64> {
    if repack.is_empty() {
        return Ok(0);
    }
    let full = repo.index();
    repo.exclude_packs(marked.union(repack).copied().collect());
    repo.load_index().await?;
    repack::copy_live(repo, full, repack, referenced.clone()).await
}

fn grace() -> Duration {
    std::env::var(TEST_GRACE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(ORPHAN_GRACE, Duration::from_secs)
}

/// Every readable snapshot's id and the blobs they reach. A snapshot that
/// cannot be read stops prune: what it references is unknown.
async fn mark(repo: &Arc<Repository>) -> Result<(HashSet<Id>, HashSet<Id>)> {
    let (snaps, damaged) = repo.snapshots_checked().await?;
    if let Some((id, e)) = damaged.first() {
        return Err(EngineError::Repo(RepoError::Corrupt(format!(
            "prune: snapshot {} cannot be read ({e}), so the data it references is unknown and nothing is deleted; run `lifeboat verify`, then `lifeboat forget` it or repair it",
            id.short()
        ))));
    }
    let mut referenced = HashSet::new();
    let mut walked = HashSet::new();
    for (id, info) in snaps {
        walk_tree(repo, info.tree, &mut referenced).await?;
        walked.insert(id);
    }
    Ok((walked, referenced))
}

/// Add `root` and everything below it to `seen`; a tree already in `seen`
/// is not read again (shared subtrees of successive snapshots). Streams:
/// one tree part in memory per directory level.
async fn walk_tree(repo: &Arc<Repository>, root: Id, seen: &mut HashSet<Id>) -> Result<()> {
    walk_new(repo, root, &HashSet::new(), seen).await
}

/// [`walk_tree`] that also skips (does not add, does not descend into)
/// everything in `known`.
async fn walk_new(
    repo: &Arc<Repository>,
    root: Id,
    known: &HashSet<Id>,
    seen: &mut HashSet<Id>,
) -> Result<()> {
    let mut stack = vec![root];
    while let Some(part) = stack.pop() {
        if known.contains(&part) || !seen.insert(part) {
            continue;
        }
        let plain = repo.read_blob(&part).await?;
        let tree: lifeboat_repo::Tree = serde_json::from_slice(&plain)
            .map_err(|e| RepoError::Corrupt(format!("tree {}: {e}", part.short())))?;
        if let Some(next) = tree.next {
            stack.push(next);
        }
        for node in tree.nodes {
            seen.extend(node.content.into_iter().filter(|c| !known.contains(c)));
            if let Some(sub) = node.subtree {
                stack.push(sub);
            }
        }
    }
    Ok(())
}

/// Indexed packs none of whose blobs is referenced.
fn garbage(repo: &Repository, referenced: &HashSet<Id>, report: &mut PruneReport) -> HashSet<Id> {
    let index = repo.index();
    let by_pack = index.by_pack();
    let mut marked = HashSet::new();
    report.packs = index.packs().len();
    for (pos, pack) in index.packs().iter().enumerate() {
        let (mut used, mut unused) = (0u64, 0u64);
        for (id, loc) in by_pack.blobs(pos) {
            if referenced.contains(&id) {
                used += u64::from(loc.len);
            } else {
                unused += u64::from(loc.len);
            }
        }
        if used == 0 {
            marked.insert(pack.id);
            report.bytes_freed += pack.size;
        } else if unused > 0 {
            report.partly_used_packs += 1;
            report.bytes_in_partly_used += unused;
        }
    }
    report.unreferenced_packs = marked.len();
    marked
}

fn packs_bytes(repo: &Repository, packs: &HashSet<Id>) -> u64 {
    repo.index()
        .packs()
        .iter()
        .filter(|p| packs.contains(&p.id))
        .map(|p| p.size)
        .sum()
}

/// Packs in storage that no index file names: those older than `grace`,
/// and those an earlier (interrupted) prune tombstoned, whatever their age.
async fn orphans(
    repo: &Repository,
    old: &[(Id, Tombstone)],
    grace: Duration,
) -> Result<Vec<(Id, u64)>> {
    let index = repo.index();
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    let stoned: HashSet<Id> = old
        .iter()
        .flat_map(|(_, t)| t.packs.iter().copied())
        .collect();
    let now = SystemTime::now();
    let mut out = Vec::new();
    for meta in repo
        .storage()
        .list(&layout::prefix(layout::DATA))
        .await
        .map_err(RepoError::from)?
    {
        let Some(id) = meta
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<Id>().ok())
        else {
            continue;
        };
        if indexed.contains(&id) {
            continue;
        }
        let old_enough = now
            .duration_since(meta.last_modified)
            .is_ok_and(|age| age > grace);
        if old_enough || stoned.contains(&id) {
            out.push((id, meta.size));
        }
    }
    Ok(out)
}

async fn write_tombstone(repo: &Repository, packs: Vec<Id>) -> Result<(Id, String)> {
    let t = Tombstone {
        version: TOMBSTONE_VERSION,
        time: crate::open::now_rfc3339(),
        packs,
    };
    let id = repo.put_sealed_json(layout::TOMBSTONES, &t).await?;
    Ok((id, layout::object_key(layout::TOMBSTONES, &id)))
}

/// Unmark: write the smaller tombstone, then delete the old one.
async fn replace_tombstone(repo: &Repository, old: Id, packs: Vec<Id>) -> Result<Id> {
    let (id, _) = write_tombstone(repo, packs).await?;
    if id != old {
        delete_object(repo, layout::TOMBSTONES, &old).await?;
    }
    Ok(id)
}

/// Wait until every backup lock listed now (after the tombstone is
/// durable) is gone or stale; returns how many were waited for. Prune locks
/// are not waited for (this prune's own; any other is backing off).
async fn wait_for_backups(repo: &Repository, stone_key: &str) -> Result<usize> {
    let listed: Vec<String> = lock::list_locks(repo.storage().as_ref())
        .await?
        .into_iter()
        .filter(|l| l.kind() != Some(lock::KIND_PRUNE))
        .map(|l| l.meta.key)
        .collect();
    let waited = listed.len();
    let mut pending = listed;
    while !pending.is_empty() {
        let now = prune_lock::storage_now(repo.storage().as_ref(), stone_key).await?;
        let live: Vec<lock::LockEntry> = lock::list_locks(repo.storage().as_ref())
            .await?
            .into_iter()
            .filter(|l| pending.contains(&l.meta.key) && !l.is_stale(now))
            .collect();
        pending = live.into_iter().map(|l| l.meta.key).collect();
        if !pending.is_empty() {
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
    Ok(waited)
}

/// §18 step 3, after the wait and before anything is deleted: reload the
/// index, list the snapshots again, walk those written since the mark
/// (added to `walked`), and unmark every marked pack holding a blob they
/// reach; returns how many.
async fn recheck(
    repo: &Arc<Repository>,
    walked: &mut HashSet<Id>,
    referenced: &mut HashSet<Id>,
    marked: &mut HashSet<Id>,
) -> Result<usize> {
    repo.load_index().await?;
    let (snaps, damaged) = repo.snapshots_checked().await?;
    if let Some((id, e)) = damaged.first() {
        return Err(EngineError::Repo(RepoError::Corrupt(format!(
            "prune: snapshot {} written meanwhile cannot be read ({e}); nothing is deleted (the tombstone stays until the next prune); run `lifeboat verify`",
            id.short()
        ))));
    }
    let mut fresh = HashSet::new();
    for (id, info) in snaps {
        if walked.insert(id) {
            walk_tree(repo, info.tree, &mut fresh).await?;
        }
    }
    let index = repo.index();
    let by_pack = index.by_pack();
    let before = marked.len();
    for (pos, pack) in index.packs().iter().enumerate() {
        if marked.contains(&pack.id) && by_pack.blobs(pos).any(|(id, _)| fresh.contains(&id)) {
            marked.remove(&pack.id);
        }
    }
    referenced.extend(fresh);
    Ok(before - marked.len())
}

/// Rewrite every index file that names a marked pack: the new file (the
/// other packs) is written before the old one is deleted, so a crash
/// leaves at worst a blob listed twice. Returns the files rewritten.
async fn rewrite_index(repo: &Repository, marked: &HashSet<Id>) -> Result<usize> {
    let storage = repo.storage();
    let mut rewritten = 0;
    let prefix = layout::prefix(layout::INDEX);
    for meta in storage.list(&prefix).await.map_err(RepoError::from)? {
        let Ok(name) = meta.key[prefix.len()..].parse::<Id>() else {
            continue;
        };
        let sealed = storage.get(&meta.key).await.map_err(RepoError::from)?;
        let records = decode_index_file(repo.keys(), &name, &sealed)?;
        if !records.iter().any(|r| marked.contains(&r.id)) {
            continue;
        }
        let rest: Vec<_> = records
            .into_iter()
            .filter(|r| !marked.contains(&r.id))
            .collect();
        if !rest.is_empty() {
            let (id, bytes) = encode_index_file(repo.keys(), &rest)?;
            storage
                .put(&layout::index_key(&id.to_string()), bytes)
                .await
                .map_err(RepoError::from)?;
        }
        storage.delete(&meta.key).await.map_err(RepoError::from)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

async fn delete_packs<'a>(repo: &Repository, packs: impl Iterator<Item = &'a Id>) -> Result<()> {
    for id in packs {
        match repo.storage().delete(&layout::pack_key(id)).await {
            Ok(()) | Err(lifeboat_storage::StorageError::NotFound { .. }) => {}
            Err(e) => return Err(RepoError::from(e).into()),
        }
    }
    Ok(())
}

async fn delete_object(repo: &Repository, dir: &str, id: &Id) -> Result<()> {
    match repo.storage().delete(&layout::object_key(dir, id)).await {
        Ok(()) | Err(lifeboat_storage::StorageError::NotFound { .. }) => Ok(()),
        Err(e) => Err(RepoError::from(e).into()),
    }
}
