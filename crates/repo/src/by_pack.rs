//! Reading many blobs pack by pack: [`read_by_pack`].
//!
//! The blobs are grouped by the pack that holds them and each pack is read
//! once: its needed blobs as a few ranged reads (neighbours closer than
//! [`MERGE_GAP`] share one read, so a pack needed mostly or whole is one
//! request). Up to `in_flight` packs are fetched and opened at once on the
//! runtime; each opened blob is handed to the caller's sink once, in no
//! particular order, through a short queue. Memory: `in_flight` packs'
//! needed (sealed) bytes, a few opened blobs, plus one location per blob
//! asked for.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobLocation;
use crate::repository::{pack_key, Repository};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Blobs of one pack whose gap is at most this many bytes are read with one
/// request (the gap is read and dropped): 1 MiB.
pub const MERGE_GAP: u64 = 1 << 20;

/// One read of a pack: bytes `start..end` and the blobs inside.
struct Range {
    start: u64,
    end: u64,
    blobs: Vec<(Id, BlobLocation)>,
}

/// Read every blob of `ids` (duplicates are read once) grouped by pack,
/// `in_flight` packs at a time, and call `sink` with each blob's id and
/// checked plaintext. Stops at the first error (a blob missing from the
/// index, an unreadable pack, a blob that fails to open, or the sink's).
/// Call from a blocking thread: it drives the runtime with `block_on`, and
/// the sink runs on the calling thread.
pub fn read_by_pack(
    repo: &Arc<Repository>,
    ids: Vec<Id>,
    in_flight: usize,
    mut sink: impl FnMut(&Id, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let rt = repo.runtime().clone();
    rt.block_on(async {
        let packs = group_by_pack(repo, ids).await?;
        // Opened blobs wait in a short queue: memory is bounded by the packs
        // in flight, not by how well their blobs decompress.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(Id, Vec<u8>)>>(8);
        let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        let producer = {
            let repo = repo.clone();
            tokio::spawn(async move {
                for (pack, ranges) in packs {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    if tx.is_closed() {
                        return;
                    }
                    let (repo, tx) = (repo.clone(), tx.clone());
                    tokio::spawn(async move {
                        fetch_pack(&repo, &pack, ranges, &tx).await;
                        drop(permit);
                    });
                }
            })
        };
        let result = async {
            while let Some(item) = rx.recv().await {
                let (id, data) = item?;
                sink(&id, data)?;
            }
            Ok(())
        }
        .await;
        // On an error the queue closes: running fetches stop at their next blob.
        drop(rx);
        let _ = producer.await;
        result
    })
}

/// Locate each blob (reloading the index once on a miss) and plan each
/// pack's reads, packs in id order.
async fn group_by_pack(repo: &Repository, mut ids: Vec<Id>) -> Result<BTreeMap<Id, Vec<Range>>> {
    ids.sort_unstable();
    ids.dedup();
    let mut by_pack: BTreeMap<Id, Vec<(Id, BlobLocation)>> = BTreeMap::new();
    let mut refreshed = false;
    for id in ids {
        let mut loc = repo.index().lookup(&id);
        if loc.is_none() && !refreshed {
            refreshed = true;
            if repo.refresh_index().await? {
                loc = repo.index().lookup(&id);
            }
        }
        let loc = loc.ok_or_else(|| {
            Error::Corrupt(format!(
                "blob {id} is not in the index (missing data); run `lifeboat verify`"
            ))
        })?;
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    Ok(by_pack
        .into_iter()
        .map(|(pack, blobs)| (pack, plan_ranges(blobs)))
        .collect())
}

/// Cut a pack's blobs (any order) into reads: sorted by offset, a blob
/// joins the previous read when the gap to it is at most [`MERGE_GAP`].
fn plan_ranges(mut blobs: Vec<(Id, BlobLocation)>) -> Vec<Range> {
    blobs.sort_by_key(|(_, l)| l.offset);
    let mut out: Vec<Range> = Vec::new();
    for (id, loc) in blobs {
        let (start, end) = (
            u64::from(loc.offset),
            u64::from(loc.offset) + u64::from(loc.len),
        );
        match out.last_mut() {
            Some(r) if start <= r.end + MERGE_GAP => {
                r.end = r.end.max(end);
                r.blobs.push((id, loc));
            }
            _ => out.push(Range {
                start,
                end,
                blobs: vec![(id, loc)],
            }),
        }
    }
    out
}

/// Read a pack's planned ranges and send each opened blob (or the first
/// error) to `tx`; stops when the receiver is gone.
async fn fetch_pack(
    repo: &Repository,
    pack: &Id,
    ranges: Vec<Range>,
    tx: &tokio::sync::mpsc::Sender<Result<(Id, Vec<u8>)>>,
) {
    let key = pack_key(pack);
    for r in ranges {
        let bytes = match repo
            .storage()
            .get_range(&key, r.start, r.end - r.start)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        for (id, loc) in r.blobs {
            let at = (u64::from(loc.offset) - r.start) as usize;
            let sealed = &bytes[at..at + loc.len as usize];
            let what = format!("blob {} in pack {}", id.short(), pack.short());
            let opened = repo.open_blob(&id, loc.compressed, loc.raw_len, sealed, &what);
            let failed = opened.is_err();
            if tx.send(opened.map(|d| (id, d))).await.is_err() || failed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::BlobKind;

    fn loc(offset: u32, len: u32) -> BlobLocation {
        BlobLocation {
            pack: Id([0; 32]),
            offset,
            len,
            raw_len: len,
            kind: BlobKind::Data,
            compressed: false,
        }
    }

    #[test]
    fn neighbours_share_a_read_and_far_blobs_get_their_own() {
        let far = (3 * MERGE_GAP) as u32;
        let blobs = vec![
            (Id([3; 32]), loc(far, 10)),
            (Id([1; 32]), loc(0, 100)),
            (Id([2; 32]), loc(150, 50)),
        ];
        let ranges = plan_ranges(blobs);
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            (ranges[0].start, ranges[0].end, ranges[0].blobs.len()),
            (0, 200, 2)
        );
        assert_eq!(
            (ranges[1].start, ranges[1].end),
            (u64::from(far), u64::from(far) + 10)
        );
    }
}
