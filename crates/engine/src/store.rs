//! Shared building blocks for backups: running under a backup lock,
//! storing a stream as content blobs, storing a tree, and sealing a
//! snapshot once its data is durable.

use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::chunker::{ChunkReader, Chunker};
use lifeboat_repo::lock::BackupLock;
use lifeboat_repo::{
    BlobKind, BlobWriter, Id, Node, NodeKind, Repository, Snapshot, SnapshotStats, Tree, WriteStats,
};
use std::io::Read;
use std::sync::Arc;

/// Run a backup under a lock (docs/FORMAT.md, "Locks and prune protocol"):
/// remove stale temp files, create `locks/<id>` *before* listing the
/// tombstones (whose packs it leaves out of its index) and loading the index,
/// run `backup` (the heartbeat refreshes the lock meanwhile), and delete the
/// lock afterwards, whether the backup succeeded or failed.
pub async fn run_locked<T, F, Fut>(repo: Arc<Repository>, backup: F) -> Result<T>
where
    F: FnOnce(Arc<Repository>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    // A read-only-compatible repository is refused before anything is written.
    repo.ensure_writable()?;
    // Leftovers of killed writers; never a temp file a live writer is filling.
    // Housekeeping only: a failure here must not fail the backup (the
    // backup's own writes report any real storage problem).
    let _ = repo
        .storage()
        .remove_stale_temp(lifeboat_storage::STALE_TEMP_AGE)
        .await;
    let lock = BackupLock::acquire(&repo, &crate::open::hostname()).await?;
    // After the lock exists: a prune that marks later waits for this lock;
    // one that marked earlier is seen here (FORMAT.md §18, step 2).
    let loaded = match lifeboat_repo::tombstone::tombstoned_packs(&repo).await {
        Ok(packs) => {
            repo.exclude_packs(packs);
            repo.load_index().await
        }
        Err(e) => Err(e),
    };
    let result = match loaded {
        Ok(()) => backup(repo.clone()).await,
        Err(e) => Err(e.into()),
    };
    let released = lock.release().await;
    let value = result?;
    released?;
    Ok(value)
}

/// Chunk `reader` and store every chunk; returns the content ids and the byte count.
pub fn store_stream(
    writer: &BlobWriter,
    chunker: &dyn Chunker,
    reader: impl Read,
    progress: &Progress,
) -> Result<(Vec<Id>, u64)> {
    store_chunks(writer, ChunkReader::new(reader, chunker), progress)
}

/// Store every chunk `chunks` yields; returns the content ids and the byte count.
pub fn store_chunks<R: Read>(
    writer: &BlobWriter,
    mut chunks: ChunkReader<'_, R>,
    progress: &Progress,
) -> Result<(Vec<Id>, u64)> {
    let mut ids = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks
        .next_chunk()
        .map_err(EngineError::io("reading source data"))?
    {
        size += chunk.len() as u64;
        progress.add_bytes(chunk.len() as u64);
        ids.push(writer.add(BlobKind::Data, chunk)?);
    }
    Ok((ids, size))
}

/// Store a tree; returns its id. A directory of more than
/// [`tree_part_nodes`] entries becomes a chain of tree blobs (FORMAT.md §9),
/// stored last part first so each part can name the next.
pub fn store_tree(writer: &BlobWriter, mut tree: Tree) -> Result<Id> {
    tree.sort();
    let mut next = None;
    for nodes in tree.into_parts(tree_part_nodes()).into_iter().rev() {
        let part = Tree { nodes, next };
        let json = serde_json::to_vec(&part).expect("trees serialize");
        next = Some(writer.add(BlobKind::Tree, json)?);
    }
    Ok(next.expect("a tree has at least one part"))
}

/// Entries per tree blob: `LIFEBOAT_TREE_PART_NODES` when set (tests use a
/// small value), else [`lifeboat_repo::tree::DEFAULT_TREE_PART_NODES`].
pub fn tree_part_nodes() -> usize {
    std::env::var("LIFEBOAT_TREE_PART_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(lifeboat_repo::tree::DEFAULT_TREE_PART_NODES)
}

/// A file node for stored stream content, owned by root, mode 0600, at `mtime_ns`.
pub fn stream_node(name: &str, content: Vec<Id>, size: u64, mtime_ns: i64) -> Node {
    let mut n = Node::new(name.as_bytes(), NodeKind::File);
    n.mode = 0o600;
    n.mtime_ns = mtime_ns;
    n.size = size;
    n.content = content;
    n
}

/// Fill a snapshot's figures from the writer's.
pub fn apply_write_stats(stats: &mut SnapshotStats, w: &WriteStats) {
    stats.blobs = w.blobs;
    stats.new_blobs = w.new_blobs;
    stats.new_bytes = w.new_bytes;
    stats.stored_bytes = w.stored_bytes;
}

/// The snapshot time: `--time` if given (validated), else now.
pub fn snapshot_time(time: Option<&str>) -> Result<String> {
    match time {
        None => Ok(crate::open::now_rfc3339()),
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map(|ts| ts.to_string())
            .map_err(|e| {
                EngineError::Config(format!(
                    "--time {t:?} is not an RFC 3339 time such as 2026-01-31T02:00:00Z: {e}"
                ))
            }),
    }
}

/// Finish the writer (packs and index durable), then write the snapshot.
pub async fn seal_snapshot(
    repo: &Arc<Repository>,
    writer: BlobWriter,
    mut snap: Snapshot,
) -> Result<(Id, Snapshot)> {
    let stats = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("writer thread panicked")?;
    apply_write_stats(&mut snap.stats, &stats);
    let id = repo.save_snapshot(&snap).await?;
    Ok((id, snap))
}
