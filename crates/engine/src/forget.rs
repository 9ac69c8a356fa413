//! `forget`: apply retention policies ([`crate::retention`]) to the
//! snapshots of each source and kind, and delete the snapshot objects the
//! policy does not keep. Data is not touched: `prune` reclaims it.
//!
//! The policy comes from the request (forget's flags, applied to every
//! source selected) or else from each source's `retention` in the config;
//! a source with neither keeps everything. Snapshots that cannot be read
//! are never removed (their time and tags are unknown).

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::retention::{self, Candidate, Policy};
use lifeboat_repo::{layout, Id, SnapshotInfo, SnapshotKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetRequest {
    /// Only this source's snapshots.
    pub source: Option<String>,
    /// A policy for every selected source instead of the config's.
    pub policy: Option<Policy>,
    /// Compute and report the plan, delete nothing.
    pub dry_run: bool,
}

/// One snapshot's fate.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetRow {
    /// Snapshot id.
    pub id: Id,
    /// Its time as stored.
    pub time: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether it stays.
    pub keep: bool,
    /// Rules keeping it (empty when removed).
    pub reasons: Vec<String>,
}

/// The plan for the snapshots of one source and kind, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetGroup {
    /// Source name.
    pub source: String,
    /// Snapshot kind.
    pub kind: SnapshotKind,
    /// The policy applied (none: every snapshot kept).
    pub policy: Option<Policy>,
    /// Every snapshot of the group.
    pub snapshots: Vec<ForgetRow>,
}

/// What forget did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Per source and kind.
    pub groups: Vec<ForgetGroup>,
    /// Snapshots kept.
    pub kept: usize,
    /// Snapshots removed (or to remove).
    pub removed: usize,
    /// Snapshots that could not be read, left alone.
    pub unreadable: Vec<Id>,
}

impl ForgetReport {
    /// Ids of the snapshots the plan removes.
    pub fn removed_ids(&self) -> impl Iterator<Item = &Id> {
        self.groups
            .iter()
            .flat_map(|g| g.snapshots.iter())
            .filter(|r| !r.keep)
            .map(|r| &r.id)
    }
}

/// Plan, and unless `dry_run`, delete the snapshots no policy keeps.
pub async fn run(ctx: &Ctx, req: ForgetRequest) -> Result<ForgetReport> {
    let repo = ctx.repo.open_without_index().await?;
    if !req.dry_run {
        repo.ensure_writable()?;
    }
    let (all, damaged) = repo.snapshots_checked().await?;
    let mut groups: BTreeMap<(String, &'static str), Vec<(Id, SnapshotInfo)>> = BTreeMap::new();
    for (id, info) in all {
        if req.source.as_deref().is_some_and(|s| s != info.source) {
            continue;
        }
        groups
            .entry((info.source.clone(), info.kind.as_str()))
            .or_default()
            .push((id, info));
    }
    let mut out = Vec::new();
    for ((source, _), snaps) in groups {
        let policy = policy_for(ctx, &req, &source);
        out.push(plan_group(&source, policy, snaps)?);
    }
    if out.iter().all(|g| g.policy.is_none()) && !out.is_empty() {
        return Err(EngineError::Config(
            "no retention policy: give one with forget's --keep-* flags, or set `retention = { daily = 7, ... }` on the source in lifeboat.toml (docs/RETENTION.md)".into(),
        ));
    }
    let report = report(
        req.dry_run,
        out,
        damaged.into_iter().map(|(id, _)| id).collect(),
    );
    if !req.dry_run {
        for id in report.removed_ids() {
            repo.storage()
                .delete(&layout::object_key("snapshots", id))
                .await
                .map_err(lifeboat_repo::Error::from)?;
        }
    }
    Ok(report)
}

fn policy_for(ctx: &Ctx, req: &ForgetRequest, source: &str) -> Option<Policy> {
    if let Some(p) = &req.policy {
        return Some(p.clone());
    }
    let cfg = ctx.config.as_ref()?;
    cfg.sources
        .iter()
        .find(|s| s.name == source)?
        .retention
        .clone()
}

fn report(dry_run: bool, groups: Vec<ForgetGroup>, unreadable: Vec<Id>) -> ForgetReport {
    let rows = || groups.iter().flat_map(|g| g.snapshots.iter());
    let kept = rows().filter(|r| r.keep).count();
    let removed = rows().filter(|r| !r.keep).count();
    ForgetReport {
        dry_run,
        groups,
        kept,
        removed,
        unreadable,
    }
}

/// One group's plan; snapshots whose time does not parse are kept.
fn plan_group(
    source: &str,
    policy: Option<Policy>,
    snaps: Vec<(Id, SnapshotInfo)>,
) -> Result<ForgetGroup> {
    let kind = snaps[0].1.kind;
    let mut rows: Vec<ForgetRow> = Vec::new();
    let mut candidates = Vec::new();
    let mut by_id = BTreeMap::new();
    for (id, info) in snaps {
        match info.time.parse::<jiff::Timestamp>() {
            Ok(time) => candidates.push(Candidate {
                key: id,
                time,
                tags: info.tags.clone(),
            }),
            Err(_) => rows.push(row(id, &info, vec!["time unreadable".into()])),
        }
        by_id.insert(id, info);
    }
    let decisions = match &policy {
        Some(p) => retention::plan(p, &candidates)
            .map_err(|e| EngineError::Config(format!("source {source}: {e}")))?,
        None => keep_all(&candidates),
    };
    for d in decisions {
        let mut r = row(d.key, &by_id[&d.key], d.reasons);
        r.keep = d.keep;
        rows.push(r);
    }
    Ok(ForgetGroup {
        source: source.to_string(),
        kind,
        policy,
        snapshots: rows,
    })
}

fn keep_all(c: &[Candidate<Id>]) -> Vec<retention::Decision<Id>> {
    let mut c: Vec<_> = c.to_vec();
    c.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.key.cmp(&a.key)));
    c.into_iter()
        .map(|c| retention::Decision {
            key: c.key,
            time: c.time,
            keep: true,
            reasons: vec!["no policy".into()],
        })
        .collect()
}

fn row(id: Id, info: &SnapshotInfo, reasons: Vec<String>) -> ForgetRow {
    ForgetRow {
        id,
        time: info.time.clone(),
        tags: info.tags.clone(),
        keep: true,
        reasons,
    }
}

/// Whether `backup` of `source` applies retention afterwards without being
/// asked (`forget_after_backup = true` on the source).
pub fn wanted_after_backup(ctx: &Ctx, source: &str) -> bool {
    ctx.config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == source))
        .is_some_and(|s| s.forget_after_backup)
}

/// What `backup --forget` did after the backup.
#[derive(Debug, Clone, Serialize)]
pub struct AfterBackup {
    /// The retention applied.
    #[serde(flatten)]
    pub forget: ForgetReport,
    /// The prune that followed (none when nothing was removed).
    pub prune: Option<crate::prune::PruneReport>,
}

/// `backup --forget`: apply `source`'s configured retention right after its
/// successful backup, then prune when snapshots were removed. A source
/// without a policy is a config error (the backup itself is already saved).
pub async fn after_backup(ctx: &Ctx, source: &str) -> Result<AfterBackup> {
    let has_policy = ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == source))
        .is_some_and(|s| s.retention.is_some());
    if !has_policy {
        return Err(EngineError::Config(format!(
            "backup --forget: source {source} has no retention policy; set `retention = {{ daily = 7, ... }}` on it in lifeboat.toml (docs/RETENTION.md); the backup itself was saved"
        )));
    }
    let forget = run(
        ctx,
        ForgetRequest {
            source: Some(source.to_string()),
            policy: None,
            dry_run: false,
        },
    )
    .await?;
    let prune = if forget.removed > 0 {
        Some(
            crate::prune::run(
                ctx,
                crate::prune::PruneRequest {
                    dry_run: false,
                    // Concurrent `backup --forget` jobs take turns.
                    if_busy: crate::prune::IfBusy::Wait,
                    repack_threshold: None,
                },
            )
            .await?,
        )
    } else {
        None
    };
    Ok(AfterBackup { forget, prune })
}
