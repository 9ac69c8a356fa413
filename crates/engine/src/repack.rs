//! Repack (part of `prune`, docs/FORMAT.md §18): packs whose unreferenced
//! share exceeds the threshold have their referenced blobs copied into new
//! packs, then are deleted like unreferenced packs.
//!
//! The candidates are tombstoned with the garbage packs (backups starting
//! later do not deduplicate against them), and the copy is made after the
//! wait and the re-check, so it includes what snapshots written meanwhile
//! reference. The copy goes through a [`BlobWriter`] whose index leaves the
//! tombstoned packs out (a blob also held by a kept pack is not copied
//! again), which writes the new packs and their index file before prune
//! rewrites the old index files and deletes anything. Streaming: one blob
//! read at a time per pack, the writer's bounded pipeline behind it.

use crate::error::{EngineError, Result};
use lifeboat_repo::index::Index;
use lifeboat_repo::{BlobWriter, Error as RepoError, Id, Repository};
use std::collections::HashSet;
use std::sync::Arc;

/// Default `--repack-threshold` / `prune.repack_threshold`, percent of a
/// pack's bytes that no snapshot references.
pub const DEFAULT_THRESHOLD_PERCENT: f64 = 10.0;

/// Packs to repack: some blobs referenced, and the unreferenced bytes more
/// than `threshold` percent of the pack's blob bytes. Returns the packs and
/// (unreferenced bytes, referenced bytes) over them.
pub fn candidates(
    index: &Index,
    referenced: &HashSet<Id>,
    threshold: f64,
) -> (HashSet<Id>, u64, u64) {
    let by_pack = index.by_pack();
    let mut out = HashSet::new();
    let (mut free, mut copy) = (0u64, 0u64);
    for (pos, pack) in index.packs().iter().enumerate() {
        let (mut used, mut unused) = (0u64, 0u64);
        for (id, loc) in by_pack.blobs(pos) {
            if referenced.contains(&id) {
                used += u64::from(loc.len);
            } else {
                unused += u64::from(loc.len);
            }
        }
        let total = used + unused;
        if used > 0 && unused > 0 && unused as f64 * 100.0 > threshold * total as f64 {
            out.insert(pack.id);
            free += unused;
            copy += used;
        }
    }
    (out, free, copy)
}

/// Copy into new packs every referenced blob that only packs about to be
/// deleted hold (located by `index`, the index as loaded before anything
/// was excluded); `repo`'s in-memory index must already leave out every
/// such pack. Does nothing when no pack is repacked (`packs` empty).
/// Returns the blobs copied.
pub async fn copy_live(
    repo: &Arc<Repository>,
    index: Arc<Index>,
    packs: &HashSet<Id>,
    referenced: Arc<HashSet<Id>>,
) -> Result<u64> {
    if packs.is_empty() {
        return Ok(0);
    }
    let repo = repo.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || copy_blocking(&rt, &repo, &index, &referenced))
        .await
        .map_err(|e| EngineError::Other(format!("repack task: {e}")))?
}

/// Copy every referenced blob the writer's index (tombstoned packs left
/// out) does not hold, from where `full` finds it. Chosen by blob, not by
/// walking the repacked packs: `full` lists one location per blob, and a
/// blob held by a repacked pack and by a deleted garbage pack may be listed
/// under either, so walking the repacked packs could miss it and the
/// deletes would then lose its only copies.
fn copy_blocking(
    rt: &tokio::runtime::Handle,
    repo: &Arc<Repository>,
    full: &Index,
    referenced: &HashSet<Id>,
) -> Result<u64> {
    let kept = repo.index();
    let mut todo = Vec::new();
    for id in referenced {
        if kept.contains(id) {
            continue;
        }
        let loc = full.lookup(id).ok_or_else(|| {
            EngineError::Repo(RepoError::Corrupt(format!(
                "prune: blob {} is referenced but in no pack; nothing was deleted; run `lifeboat verify`",
                id.short()
            )))
        })?;
        todo.push((*id, loc));
    }
    // In pack order: reads sweep each pack once, front to back.
    todo.sort_by_key(|(_, loc)| (loc.pack, loc.offset));
    let writer = BlobWriter::new(repo.clone());
    for (id, loc) in todo {
        let sealed = rt
            .block_on(repo.storage().get_range(
                &lifeboat_repo::layout::pack_key(&loc.pack),
                u64::from(loc.offset),
                u64::from(loc.len),
            ))
            .map_err(RepoError::from)?;
        let plain = repo.open_blob(
            &id,
            loc.compressed,
            loc.raw_len,
            &sealed,
            &format!("blob {} in pack {} (repack)", id.short(), loc.pack.short()),
        )?;
        writer.add_with_id(loc.kind, id, plain)?;
    }
    Ok(writer.finish()?.new_blobs)
}
