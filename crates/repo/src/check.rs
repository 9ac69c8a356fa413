//! Checking a repository: structure, and optionally the data itself.
//!
//! Steps (each adds [`Problem`]s and never stops at the first):
//! 0. list the snapshots first: whatever a backup running meanwhile adds,
//!    every listed snapshot's data is then in the index loaded next (a
//!    backup writes its index files before its snapshot);
//! 1. load every index file (a damaged one is a problem, the rest still load);
//! 2. every indexed pack exists with its indexed size;
//! 3. with `read_data`, read packs (all or a random N% each run): the pack
//!    hashes to its name, and every blob decrypts and hashes to its id;
//! 4. every snapshot loads, and walking its trees finds every blob indexed
//!    and undamaged; damage is reported per snapshot with the paths it hits.
//!    Before a snapshot is called damaged, the index is reloaded if index
//!    files were added meanwhile, and the snapshot is walked again.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobLocation;
use crate::repository::{pack_key, Repository};
use crate::tree::{NodeKind, Tree};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// What to check beyond structure.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read and verify this percentage of packs (100 = all); `None` = structure only.
    pub read_data_percent: Option<f64>,
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
    let snapshot_ids = repo.list_ids("snapshots").await?;
    let (index, index_problems) = repo.load_index_lenient().await?;
    report.index_files = repo.storage().list("index/").await?.len();
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
        .list("data/")
        .await?
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    let mut by_pack: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
    for (id, loc) in index.iter() {
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    let mut readable = Vec::new();
    for pack in index.packs() {
        let key = pack_key(&pack.id);
        let blobs = by_pack.get(&pack.id).map(Vec::as_slice).unwrap_or(&[]);
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
                bad_blobs.extend(blobs.iter().map(|(id, _)| *id));
            }
            None => readable.push(pack.id),
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
        for pack in sample(readable, pct) {
            let blobs = by_pack.get(&pack).map(Vec::as_slice).unwrap_or(&[]);
            read_pack(repo, &pack, blobs, &mut report, &mut bad_blobs).await?;
        }
    }

    let mut walker = Walker {
        repo,
        bad_blobs: &bad_blobs,
        trees: HashMap::new(),
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
                let mut paths = Vec::new();
                walker.walk(snap.tree, String::new(), &mut paths).await;
                if !paths.is_empty() && walker.refresh().await? {
                    paths.clear();
                    walker.walk(snap.tree, String::new(), &mut paths).await;
                }
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

/// A random `pct`% of `packs` (at least one when any), different on each run.
fn sample(mut packs: Vec<Id>, pct: f64) -> Vec<Id> {
    if pct >= 100.0 {
        return packs;
    }
    let want = ((packs.len() as f64) * pct / 100.0).ceil() as usize;
    let salt: [u8; 16] = crate::crypto::random_array();
    packs.sort_by_key(|p| {
        *blake3::keyed_hash(&blake3::derive_key("lifeboat sample", &salt), &p.0).as_bytes()
    });
    packs.truncate(want.max(1).min(packs.len()));
    packs
}

async fn read_pack(
    repo: &Repository,
    pack: &Id,
    blobs: &[(Id, BlobLocation)],
    report: &mut CheckReport,
    bad_blobs: &mut HashSet<Id>,
) -> Result<()> {
    let key = pack_key(pack);
    let bytes = match repo.storage().get(&key).await {
        Ok(b) => b,
        Err(e) => {
            report.problems.push(Problem {
                object: key,
                message: e.to_string(),
            });
            bad_blobs.extend(blobs.iter().map(|(id, _)| *id));
            return Ok(());
        }
    };
    report.packs_read += 1;
    report.bytes_read += bytes.len() as u64;
    if Id::of_file(&bytes) != *pack {
        report.problems.push(Problem {
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
            Error::Unsupported(_) => report.unsupported.push(problem),
            _ => report.problems.push(problem),
        }
    }
    for (id, loc) in blobs {
        let range = loc.offset as usize..(loc.offset as usize + loc.len as usize);
        let what = format!("blob {} in {key}", id.short());
        let result = match bytes.get(range) {
            Some(sealed) => repo
                .open_blob(id, loc.compressed, loc.raw_len, sealed, &what)
                .map(|_| ()),
            None => Err(crate::error::Error::Corrupt(format!(
                "{what}: beyond the pack's end"
            ))),
        };
        if let Err(e) = result {
            report.problems.push(Problem {
                object: key.clone(),
                message: e.to_string(),
            });
            bad_blobs.insert(*id);
        }
    }
    Ok(())
}

struct Walker<'a> {
    repo: &'a Repository,
    bad_blobs: &'a HashSet<Id>,
    trees: HashMap<Id, std::result::Result<Tree, String>>,
}

impl Walker<'_> {
    /// Reload the index if index files appeared since it was loaded, and
    /// forget trees that failed to load; whether anything changed.
    async fn refresh(&mut self) -> Result<bool> {
        if !self.repo.index_files_changed().await? {
            return Ok(false);
        }
        // Damaged index files were reported by the first load.
        let (index, _) = self.repo.load_index_lenient().await?;
        self.repo.set_index(index);
        self.trees.retain(|_, t| t.is_ok());
        Ok(true)
    }

    fn blob_ok(&self, id: &Id) -> bool {
        !self.bad_blobs.contains(id) && self.repo.index().contains(id)
    }

    async fn walk(&mut self, root: Id, root_path: String, damaged: &mut Vec<String>) {
        let mut stack = vec![(root, root_path)];
        while let Some((tree_id, path)) = stack.pop() {
            let tree = match self.load(tree_id).await {
                Ok(t) => t,
                Err(_) => {
                    damaged.push(format!("{path}/"));
                    continue;
                }
            };
            for node in &tree.nodes {
                let child = format!("{path}/{}", node.name);
                match node.kind {
                    NodeKind::Dir => match node.subtree {
                        Some(sub) => stack.push((sub, child)),
                        None => damaged.push(format!("{child}/")),
                    },
                    NodeKind::File => {
                        if !node.content.iter().all(|id| self.blob_ok(id)) {
                            damaged.push(child);
                        }
                    }
                    NodeKind::Symlink => {}
                }
            }
        }
        damaged.sort();
    }

    async fn load(&mut self, id: Id) -> std::result::Result<Tree, String> {
        if let Some(t) = self.trees.get(&id) {
            return t.clone();
        }
        let result = if self.bad_blobs.contains(&id) {
            Err("damaged".to_string())
        } else {
            self.repo.load_tree(&id).await.map_err(|e| e.to_string())
        };
        self.trees.insert(id, result.clone());
        result
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
