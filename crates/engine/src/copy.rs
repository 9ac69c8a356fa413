//! `copy`: snapshots from this repository into another one (an offsite
//! copy), with the blobs they need and nothing else.
//!
//! The two repositories have different master keys, so the same plaintext
//! has different blob ids in each (ids are keyed hashes, FORMAT.md §6):
//! every blob is read and opened here and stored again under the target's
//! key, and every tree is rewritten with the target's ids. What the target
//! already holds is not uploaded again (its writer skips ids in its index),
//! and within one run a tree or data blob seen once is not read again.
//!
//! A snapshot counts as already copied when the target has one with the
//! same time, host, user, source, kind, paths, tags and figures (no format
//! field needed, and a
//! re-run after a crash finds exactly what was saved), or when the target
//! holds a `copied/<id>` record of it (FORMAT.md §21): one is written after
//! each copied snapshot, and the target's own `forget` leaves it, so a
//! snapshot the target's retention removed is not copied again. Naming
//! snapshots explicitly (`copy --to T SNAP`) ignores the records. Each snapshot's
//! blobs are flushed and indexed before its snapshot file is written, under
//! a backup lock on the target, so a killed copy leaves only unreferenced
//! packs that prune reclaims.

use crate::error::{EngineError, Result};
use crate::open::RepoSpec;
use crate::store::{run_locked, store_tree};
use crate::Ctx;
use lifeboat_repo::{layout, BlobKind, BlobWriter, Id, Repository, Snapshot, SnapshotInfo, Tree};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What to copy, and where.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Name of the target: a `[repositories.<name>]` table of the config.
    pub target: String,
    /// Only snapshots of this source.
    pub source: Option<String>,
    /// Only these snapshots (id prefixes or `latest`); all when empty.
    pub snapshots: Vec<String>,
}

/// One snapshot copied.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    /// Its id here.
    pub from: Id,
    /// Its id in the target.
    pub to: Id,
    /// Source name.
    pub source: String,
    /// Snapshot time.
    pub time: String,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CopyReport {
    /// Target name.
    pub target: String,
    /// Snapshots written to the target, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the target already had.
    pub already_there: usize,
    /// Blobs the target did not have.
    pub new_blobs: u64,
    /// Their plaintext bytes.
    pub new_bytes: u64,
    /// What they take in the target's packs.
    pub stored_bytes: u64,
}

/// The target's repository spec from the config's `[repositories.<name>]`.
pub fn target_spec(ctx: &Ctx, name: &str) -> Result<RepoSpec> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        EngineError::Config(format!(
            "copy target {name:?} needs a config file with a [repositories.{name}] table"
        ))
    })?;
    let repo = cfg.repositories.get(name).ok_or_else(|| {
        let known: Vec<&str> = cfg.repositories.keys().map(String::as_str).collect();
        EngineError::Config(format!(
            "no [repositories.{name}] in the config (known: {}); add one with url and password_file",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })?;
    Ok(RepoSpec::default().with_config(repo, cfg))
}

/// Copy the chosen snapshots into the target named by `req.target`.
pub async fn copy(ctx: &Ctx, req: CopyRequest) -> Result<CopyReport> {
    let spec = target_spec(ctx, &req.target)?;
    let from = ctx.repo.open().await?;
    let to = spec
        .open_without_index()
        .await
        .map_err(|e| target_key_error(e, &req.target))?;
    if from.config().id == to.config().id {
        return Err(EngineError::Config(
            "the copy target is this repository; name another one".into(),
        ));
    }
    let chosen = choose(&from, &req).await?;
    run_locked(to, move |to| async move {
        let mut present: HashSet<Identity> = to
            .snapshots()
            .await?
            .iter()
            .map(|(_, s)| Identity::of(s))
            .collect();
        if req.snapshots.is_empty() {
            present.extend(copied_records(&to).await?);
        }
        let mut report = CopyReport {
            target: req.target.clone(),
            ..CopyReport::default()
        };
        let mut seen = Seen::default();
        for (id, info) in chosen {
            if present.contains(&Identity::of(&info)) {
                report.already_there += 1;
                continue;
            }
            let snap = from.load_snapshot(&id).await?;
            let (to_id, done) = copy_one(&from, &to, snap, seen).await?;
            to.put_sealed_json(layout::COPIED, &CopiedRecord::new(&info))
                .await?;
            seen = done.seen;
            report.new_blobs += done.new_blobs;
            report.new_bytes += done.new_bytes;
            report.stored_bytes += done.stored_bytes;
            report.copied.push(CopiedSnapshot {
                from: id,
                to: to_id,
                source: info.source,
                time: info.time,
            });
        }
        Ok(report)
    })
    .await
}

/// A wrong secret for the target names the target's settings, not the
/// flags of this repository.
fn target_key_error(e: EngineError, name: &str) -> EngineError {
    let settings =
        format!("password_file / password / key_file in [repositories.{name}] of the config");
    match e {
        EngineError::Repo(lifeboat_repo::Error::WrongPassword(loc)) => EngineError::WrongTargetKey(format!(
            "wrong password for copy target {name:?} ({loc}): no key there opens with the passphrase from its {settings}; the target has its own key, set that one there"
        )),
        EngineError::Repo(lifeboat_repo::Error::WrongKey(loc)) => EngineError::WrongTargetKey(format!(
            "the key file for copy target {name:?} does not open {loc} (it belongs to another repository or is damaged): fix the {settings}"
        )),
        other => other,
    }
}

/// `copied/<id>` in a copy target (FORMAT.md §21): which snapshot was
/// copied there, by the identity `copy` compares.
#[derive(Debug, Serialize, serde::Deserialize)]
struct CopiedRecord {
    version: u32,
    snapshot: Identity,
}

impl CopiedRecord {
    fn new(info: &SnapshotInfo) -> Self {
        CopiedRecord {
            version: 1,
            snapshot: Identity::of(info),
        }
    }
}

/// Identities of every snapshot the target records as copied (also the
/// ones it has forgotten since). An unreadable record fails the copy
/// rather than risk copying what the target's retention removed.
async fn copied_records(to: &Repository) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for id in to.list_ids(layout::COPIED).await? {
        let record: CopiedRecord = to.get_sealed_json(layout::COPIED, &id).await?;
        if record.version == 1 {
            out.push(record.snapshot);
        }
    }
    Ok(out)
}

/// The snapshots to copy, oldest first.
async fn choose(from: &Repository, req: &CopyRequest) -> Result<Vec<(Id, SnapshotInfo)>> {
    let all = from.snapshots().await?;
    let all: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| req.source.as_deref().is_none_or(|src| s.source == src))
        .collect();
    if req.snapshots.is_empty() {
        return Ok(all);
    }
    let mut ids = HashSet::new();
    for spec in &req.snapshots {
        let (id, _) = from.find_snapshot(spec, req.source.as_deref()).await?;
        ids.insert(id);
    }
    Ok(all.into_iter().filter(|(id, _)| ids.contains(id)).collect())
}

/// What makes two snapshots the same backup (see the module docs). Time,
/// host and source alone are not enough: `--time` lets two different
/// backups of a source share a time, so the user, paths and the backup's
/// own figures (copied unchanged) count too.
#[derive(Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
struct Identity {
    time: String,
    host: String,
    user: String,
    source: String,
    kind: String,
    paths: Vec<String>,
    tags: Vec<String>,
    stats: [u64; 8],
}

impl Identity {
    fn of(s: &SnapshotInfo) -> Self {
        let mut tags = s.tags.clone();
        tags.sort();
        let st = &s.stats;
        Identity {
            time: s.time.clone(),
            host: s.host.clone(),
            user: s.user.clone(),
            source: s.source.clone(),
            kind: s.kind.as_str().to_string(),
            paths: s.paths.clone(),
            tags,
            stats: [
                st.files,
                st.dirs,
                st.bytes,
                st.blobs,
                st.new_blobs,
                st.new_bytes,
                st.stored_bytes,
                st.duration_ms,
            ],
        }
    }
}

/// Ids already stored in the target during this run: source id to target
/// id, for trees (a subtree shared with an earlier snapshot is not walked
/// again) and data blobs (not read again). 64 bytes per blob.
#[derive(Default)]
struct Seen {
    trees: HashMap<Id, Id>,
    blobs: HashMap<Id, Id>,
}

struct OneDone {
    seen: Seen,
    new_blobs: u64,
    new_bytes: u64,
    stored_bytes: u64,
}

/// Copy one snapshot: its trees and data, then its snapshot file.
async fn copy_one(
    from: &Arc<Repository>,
    to: &Arc<Repository>,
    snap: Snapshot,
    seen: Seen,
) -> Result<(Id, OneDone)> {
    let writer = BlobWriter::new(to.clone());
    let (from2, root) = (from.clone(), snap.tree);
    let (writer, tree, seen) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut seen = seen;
        let tree = copy_tree(&from2, &writer, &root, &mut seen)?;
        Ok((writer, tree, seen))
    })
    .await
    .expect("copy thread panicked")?;
    let stats = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("writer thread panicked")?;
    // The backup's own figures stay; the parent is this repository's id,
    // meaningless in the target.
    let copy = Snapshot {
        tree,
        parent: None,
        ..snap
    };
    let id = to.save_snapshot(&copy).await?;
    Ok((
        id,
        OneDone {
            seen,
            new_blobs: stats.new_blobs,
            new_bytes: stats.new_bytes,
            stored_bytes: stats.stored_bytes,
        },
    ))
}

/// Store the tree `id` of `from` (and everything below it) in the target;
/// returns its id there. Depth first: memory holds one path of trees.
fn copy_tree(from: &Repository, writer: &BlobWriter, id: &Id, seen: &mut Seen) -> Result<Id> {
    if let Some(done) = seen.trees.get(id) {
        return Ok(*done);
    }
    let mut tree: Tree = from.load_tree_blocking(id)?;
    for node in &mut tree.nodes {
        if let Some(sub) = node.subtree {
            node.subtree = Some(copy_tree(from, writer, &sub, seen)?);
        }
        for blob in &mut node.content {
            *blob = copy_blob(from, writer, blob, seen)?;
        }
    }
    let new = store_tree(writer, tree)?;
    seen.trees.insert(*id, new);
    Ok(new)
}

fn copy_blob(from: &Repository, writer: &BlobWriter, id: &Id, seen: &mut Seen) -> Result<Id> {
    if let Some(done) = seen.blobs.get(id) {
        return Ok(*done);
    }
    let data = from.read_blob_blocking(id)?;
    let new = writer.add(BlobKind::Data, data)?;
    seen.blobs.insert(*id, new);
    Ok(new)
}

/// The `copy_to` targets of `source` in the config.
pub fn targets_after_backup(ctx: &Ctx, source: &str) -> Vec<String> {
    ctx.config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == source))
        .map(|s| s.copy_to.clone())
        .unwrap_or_default()
}

/// After a backup of `source`: bring each of its `copy_to` targets up to
/// date with every snapshot of the source they miss (so a copy that failed
/// yesterday is caught up today).
pub async fn after_backup(ctx: &Ctx, source: &str) -> Result<Vec<CopyReport>> {
    let mut reports = Vec::new();
    for target in targets_after_backup(ctx, source) {
        let req = CopyRequest {
            target,
            source: Some(source.to_string()),
            snapshots: Vec::new(),
        };
        reports.push(copy(ctx, req).await?);
    }
    Ok(reports)
}
