//! Checking a repository: structure, and optionally the data itself.
//!
//! Steps (each adds [`Problem`]s and never stops at the first):
//! 0. list the snapshots first: whatever a backup running meanwhile adds,
//!    every listed snapshot's data is then in the index loaded next (a
//!    backup writes its index files before its snapshot);
//! 1. load every index file (a damaged one is a problem, the rest still load);
//! 2. every indexed pack exists with its indexed size;
//! 3. with `read_data`, read packs (all or a random N% each run): the pack
//!    hashes to its name, and every blob decrypts and hashes to its id (a
//!    fetch ahead, one verifier per core, a few packs in memory);
//! 4. every snapshot loads, and walking its trees finds every blob indexed
//!    and undamaged; damage is reported per snapshot with the paths it hits.
//!    Before a snapshot is called damaged, the index is reloaded if index
//!    files were added meanwhile, and the snapshot is walked again.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{BlobLocation, ByPack, Index, PackInfo};
use crate::repository::{pack_key, Repository};
use crate::tree::NodeKind;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What to check beyond structure.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read and verify this percentage of packs (100 = all); `None` = structure only.
    pub read_data_percent: Option<f64>,
    /// Read the `n`-th slice of that size (packs in id order, `n` modulo the
    /// number of slices) instead of a random sample: with `n` counting the
    /// runs, every pack is read once per `100 / percent` runs.
    pub read_data_rotation: Option<u64>,
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The object concerned (`index/<id>`, `data/..`, `snapshots/<id>`).
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// A snapshot that cannot be restored whole.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedSnapshot {
    /// Snapshot id.
    pub id: Id,
    /// Its source, when the snapshot itself could be read.
    pub source: Option<String>,
    /// Its time, when known.
    pub time: Option<String>,
    /// Paths inside the snapshot whose data is missing or damaged
    /// (`/` for the snapshot object itself).
    pub paths: Vec<String>,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Index files read.
    pub index_files: usize,
    /// Distinct blobs indexed.
    pub blobs: usize,
    /// Packs indexed.
    pub packs: usize,
    /// Packs read with `read_data`.
    pub packs_read: usize,
    /// Bytes read with `read_data`.
    pub bytes_read: u64,
    /// Packs present but not indexed (left by an interrupted backup, or
    /// being written by a running one; prune will reclaim them).
    pub unindexed_packs: usize,
    /// Their keys (`data/xx/<id>`).
    pub unindexed_pack_keys: Vec<String>,
    /// Problems found.
    pub problems: Vec<Problem>,
    /// Snapshots affected by them.
    pub damaged_snapshots: Vec<DamagedSnapshot>,
    /// Objects written by a newer lifeboat that this build cannot check
    /// (not damage: upgrade lifeboat).
    pub unsupported: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.damaged_snapshots.is_empty()
    }
}

/// Check `repo`; the in-memory index is replaced by what could be loaded.
pub async fn check(repo: &Arc<Repository>, opts: CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let snapshot_ids = repo.list_ids(crate::layout::SNAPSHOTS).await?;
    let (index, index_problems) = repo.load_index_lenient().await?;
    report.index_files = repo
        .storage()
        .list(&crate::layout::prefix(crate::layout::INDEX))
        .await?
        .len();
    for (object, e) in index_problems {
        let problem = Problem {
            object,
            message: e.to_string(),
        };
        match e {
            Error::Unsupported(_) => report.unsupported.push(problem),
            _ => report.problems.push(problem),
        }
    }
    report.blobs = index.len();
    report.packs = index.packs().len();
    repo.set_index(index);
    let index = repo.index();

    let mut bad_blobs = HashSet::new();
    let stored: HashMap<String, u64> = repo
        .storage()
        .list(&crate::layout::prefix(crate::layout::DATA))
        .await?
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    let by_pack = index.by_pack();
    let mut readable = Vec::new();
    for (pos, pack) in index.packs().iter().enumerate() {
        let key = pack_key(&pack.id);
        let message = match stored.get(&key) {
            None => Some("pack is missing".to_string()),
            Some(&size) if size != pack.size => Some(format!(
                "pack has {size} bytes, the index says {} (truncated or damaged)",
                pack.size
            )),
            Some(_) => None,
        };
        match message {
            Some(message) => {
                report.problems.push(Problem {
                    object: key,
                    message,
                });
                bad_blobs.extend(by_pack.blobs(pos).map(|(id, _)| id));
            }
            None => readable.push(pos),
        }
    }
    let indexed: HashSet<String> = index.packs().iter().map(|p| pack_key(&p.id)).collect();
    report.unindexed_pack_keys = stored
        .keys()
        .filter(|k| !indexed.contains(*k))
        .cloned()
        .collect();
    report.unindexed_pack_keys.sort();
    report.unindexed_packs = report.unindexed_pack_keys.len();

    if let Some(pct) = opts.read_data_percent {
        read_packs(
            repo,
            &by_pack,
            match opts.read_data_rotation {
                Some(n) => slice(readable, index.packs(), pct, n),
                None => sample(readable, index.packs(), pct),
            },
            &mut report,
            &mut bad_blobs,
        )
        .await?;
    }
    drop(by_pack);

    let mut walker = Walker {
        repo,
        bad_blobs: &bad_blobs,
        done: HashMap::new(),
    };
    for id in snapshot_ids {
        report.snapshots += 1;
        match repo.load_snapshot(&id).await {
            Err(e @ Error::Unsupported(_)) => report.unsupported.push(Problem {
                object: format!("snapshots/{id}"),
                message: e.to_string(),
            }),
            Err(e) => {
                report.problems.push(Problem {
                    object: format!("snapshots/{id}"),
                    message: e.to_string(),
                });
                report.damaged_snapshots.push(DamagedSnapshot {
                    id,
                    source: None,
                    time: None,
                    paths: vec!["/".into()],
                });
            }
            Ok(snap) => {
                let mut paths = walker.walk(snap.tree).await;
                if !paths.is_empty() && walker.refresh().await? {
                    paths = walker.walk(snap.tree).await;
                }
                paths.sort();
                if !paths.is_empty() {
                    report.damaged_snapshots.push(DamagedSnapshot {
                        id,
                        source: Some(snap.source),
                        time: Some(snap.time),
                        paths,
                    });
                }
            }
        }
    }
    Ok(report)
}

/// A random `pct`% of the packs at `positions` (at least one when any), different on each run.
fn sample(mut positions: Vec<usize>, packs: &[PackInfo], pct: f64) -> Vec<usize> {
    if pct >= 100.0 {
        return positions;
    }
    let want = ((positions.len() as f64) * pct / 100.0).ceil() as usize;
    let salt: [u8; 16] = crate::crypto::random_array();
    let key = blake3::derive_key("lifeboat sample", &salt);
    positions.sort_by_key(|&p| *blake3::keyed_hash(&key, &packs[p].id.0).as_bytes());
    positions.truncate(want.max(1).min(positions.len()));
    positions
}

/// The `n`-th slice of `pct`% of the packs at `positions`, in pack id order
/// (slices wrap around: `n` modulo their number).
fn slice(mut positions: Vec<usize>, packs: &[PackInfo], pct: f64, n: u64) -> Vec<usize> {
    if pct >= 100.0 || positions.is_empty() {
        return positions;
    }
    positions.sort_by_key(|&p| packs[p].id.0);
    let want = (((positions.len() as f64) * pct / 100.0).ceil() as usize).max(1);
    let slices = positions.len().div_ceil(want);
    let k = (n % slices as u64) as usize;
    let end = ((k + 1) * want).min(positions.len());
    positions[k * want..end].to_vec()
}

/// Read and verify the packs at `positions`: one task fetches packs
/// while blocking workers, one per core, hash, decrypt, decompress and
/// re-hash the ones fetched before. At most [`verifiers`] packs are being
/// verified plus one being fetched, so memory stays bounded by a few packs
/// whatever the repository's size. Results are merged in pack order.
async fn read_packs(
    repo: &Arc<Repository>,
    by_pack: &ByPack<'_>,
    positions: Vec<usize>,
    report: &mut CheckReport,
    bad_blobs: &mut HashSet<Id>,
) -> Result<()> {
    let mut in_flight = std::collections::VecDeque::new();
    for pos in positions {
        let id = repo.index().packs()[pos].id;
        let blobs: Vec<(Id, BlobLocation)> = by_pack.blobs(pos).collect();
        let key = pack_key(&id);
        let fetched = repo.storage().get(&key).await;
        let repo = repo.clone();
        in_flight.push_back(tokio::task::spawn_blocking(move || {
            verify_pack(&repo, id, key, blobs, fetched)
        }));
        if in_flight.len() >= verifiers() {
            merge(
                in_flight.pop_front().expect("in flight").await,
                report,
                bad_blobs,
            );
        }
    }
    for task in in_flight {
        merge(task.await, report, bad_blobs);
    }
    Ok(())
}

/// Packs verified at once: the machine's cores.
fn verifiers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// What reading one pack found.
#[derive(Default)]
struct PackOutcome {
    read: bool,
    bytes: u64,
    problems: Vec<Problem>,
    unsupported: Vec<Problem>,
    bad_blobs: Vec<Id>,
}

fn merge(
    outcome: std::result::Result<PackOutcome, tokio::task::JoinError>,
    report: &mut CheckReport,
    bad_blobs: &mut HashSet<Id>,
) {
    let o = outcome.expect("pack verification panicked");
    if o.read {
        report.packs_read += 1;
        report.bytes_read += o.bytes;
    }
    report.problems.extend(o.problems);
    report.unsupported.extend(o.unsupported);
    bad_blobs.extend(o.bad_blobs);
}

/// Check one fetched pack: it hashes to its name, parses, and each indexed
/// blob opens and hashes to its id.
fn verify_pack(
    repo: &Repository,
    id: Id,
    key: String,
    blobs: Vec<(Id, BlobLocation)>,
    fetched: std::result::Result<Vec<u8>, lifeboat_storage::StorageError>,
) -> PackOutcome {
    let mut out = PackOutcome::default();
    let bytes = match fetched {
        Ok(b) => b,
        Err(e) => {
            out.problems.push(Problem {
                object: key,
                message: e.to_string(),
            });
            out.bad_blobs = blobs.into_iter().map(|(id, _)| id).collect();
            return out;
        }
    };
    out.read = true;
    out.bytes = bytes.len() as u64;
    if Id::of_file(&bytes) != id {
        out.problems.push(Problem {
            object: key.clone(),
            message: "pack content does not match its name (damaged bytes)".into(),
        });
    }
    if let Err(e) = crate::pack::parse_pack(repo.keys(), &bytes, &key) {
        let problem = Problem {
            object: key.clone(),
            message: e.to_string(),
        };
        match e {
            Error::Unsupported(_) => out.unsupported.push(problem),
            _ => out.problems.push(problem),
        }
    }
    for (id, loc) in blobs {
        let range = loc.offset as usize..(loc.offset as usize + loc.len as usize);
        let what = format!("blob {} in {key}", id.short());
        let result = match bytes.get(range) {
            Some(sealed) => repo
                .open_blob(&id, loc.compressed, loc.raw_len, sealed, &what)
                .map(|_| ()),
            None => Err(crate::error::Error::Corrupt(format!(
                "{what}: beyond the pack's end"
            ))),
        };
        if let Err(e) = result {
            out.problems.push(Problem {
                object: key.clone(),
                message: e.to_string(),
            });
            out.bad_blobs.push(id);
        }
    }
    out
}

/// Walks snapshots' trees depth first, one directory per level in memory.
/// A tree seen before (shared by snapshots) is not read again: its
/// damaged paths, usually none, are remembered by tree id.
struct Walker<'a> {
    repo: &'a Repository,
    bad_blobs: &'a HashSet<Id>,
    done: HashMap<Id, Vec<String>>,
}

impl Walker<'_> {
    /// Reload the index if index files appeared since it was loaded, and
    /// forget the trees found damaged; whether anything changed.
    async fn refresh(&mut self) -> Result<bool> {
        if !self.repo.index_files_changed().await? {
            return Ok(false);
        }
        // Damaged index files were reported by the first load.
        let (index, _) = self.repo.load_index_lenient().await?;
        self.repo.set_index(index);
        self.done.retain(|_, damaged| damaged.is_empty());
        Ok(true)
    }

    fn blob_ok(&self, index: &Index, id: &Id) -> bool {
        !self.bad_blobs.contains(id) && index.contains(id)
    }

    /// Damaged paths below tree `id`, relative to it (`/` = the tree itself).
    fn walk(&mut self, id: Id) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            if let Some(paths) = self.done.get(&id) {
                return paths.clone();
            }
            let paths = self.walk_uncached(id).await;
            self.done.insert(id, paths.clone());
            paths
        })
    }

    async fn walk_uncached(&mut self, id: Id) -> Vec<String> {
        let loaded = if self.bad_blobs.contains(&id) {
            None
        } else {
            self.repo.load_tree(&id).await.ok()
        };
        let Some(tree) = loaded else {
            return vec!["/".into()];
        };
        let index = self.repo.index();
        let mut damaged = Vec::new();
        for node in &tree.nodes {
            let child = format!("/{}", node.name);
            match node.kind {
                NodeKind::Dir => match node.subtree {
                    Some(sub) => {
                        let below = self.walk(sub).await;
                        damaged.extend(below.into_iter().map(|p| format!("{child}{p}")));
                    }
                    None => damaged.push(format!("{child}/")),
                },
                NodeKind::File => {
                    if !node.content.iter().all(|id| self.blob_ok(&index, id)) {
                        damaged.push(child);
                    }
                }
                NodeKind::Symlink => {}
            }
        }
        damaged
    }
}

/// Group damaged paths by snapshot for display.
pub fn damage_by_source(report: &CheckReport) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in &report.damaged_snapshots {
        *out.entry(d.source.clone().unwrap_or_else(|| "?".into()))
            .or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_slices_cover_every_pack_once_per_round() {
        let packs: Vec<PackInfo> = (0..10u8)
            .map(|i| PackInfo {
                id: Id([9 - i; 32]),
                size: 1,
            })
            .collect();
        let all: Vec<usize> = (0..10).collect();
        let mut seen = Vec::new();
        for run in 0..4 {
            let s = slice(all.clone(), &packs, 30.0, run);
            assert!(s.len() <= 3 && !s.is_empty(), "{s:?}");
            seen.extend(s);
        }
        seen.sort();
        assert_eq!(seen, all, "4 slices of 30% cover the 10 packs once");
        assert_eq!(
            slice(all.clone(), &packs, 30.0, 4),
            slice(all.clone(), &packs, 30.0, 0)
        );
        assert_eq!(slice(all.clone(), &packs, 100.0, 7).len(), 10);
    }
}
