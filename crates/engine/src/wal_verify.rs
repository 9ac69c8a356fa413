//! `wal verify`: is the archive complete and intact, and how old is it?
//!
//! Per timeline: what is archived, and every segment missing between the
//! start segment of the oldest base backup on that timeline (or the first
//! archived segment, on a timeline without one) and the newest archived
//! segment; every archived object is read, opened and checked against its
//! header (length and keyed hash); and the newest archived segment with
//! its age, which is the recovery point objective right now. Reading is
//! one object at a time, so memory stays at one segment.

use crate::ctx::Ctx;
use crate::error::Result;
use crate::postgres::{PhysicalMeta, KIND_PHYSICAL};
use crate::wal::{segment_size, ClusterRef};
use lifeboat_repo::wal::{self, segment_name, WalName};
use lifeboat_repo::Repository;
use serde::Serialize;
use std::collections::BTreeMap;

/// What `wal verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The cluster's system identifier.
    pub system_id: u64,
    /// WAL segment size in bytes.
    pub segment_size: u64,
    /// Per timeline, in order.
    pub timelines: Vec<TimelineCheck>,
    /// Objects that could not be read, opened or did not match their header.
    pub bad_objects: Vec<BadObject>,
    /// The newest archived segment.
    pub last_archived: Option<LastArchived>,
    /// Files checked.
    pub files_checked: usize,
    /// No segment missing and no bad object.
    pub ok: bool,
}

/// One timeline's archive.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineCheck {
    /// 8 hex digits.
    pub timeline: String,
    /// Segments archived.
    pub segments: usize,
    /// First and last archived segment.
    pub first: Option<String>,
    /// Last archived segment.
    pub last: Option<String>,
    /// Where continuity is required from: the oldest base backup's start
    /// segment on this timeline, else the first archived segment.
    pub checked_from: Option<String>,
    /// Base backups starting on this timeline: snapshot id and start segment.
    pub base_backups: Vec<[String; 2]>,
    /// Runs of missing segments, `[first, last]` (inclusive).
    pub missing: Vec<[String; 2]>,
}

/// An object that failed its check.
#[derive(Debug, Clone, Serialize)]
pub struct BadObject {
    /// WAL file name.
    pub name: String,
    /// What is wrong.
    pub error: String,
}

/// The newest archived segment.
#[derive(Debug, Clone, Serialize)]
pub struct LastArchived {
    /// Its name.
    pub name: String,
    /// When it was written to the repository (RFC 3339).
    pub time: String,
    /// Seconds since then: the recovery point objective right now.
    pub age_seconds: u64,
}

/// Check a cluster's archived WAL.
pub async fn verify(ctx: &Ctx, cluster: ClusterRef) -> Result<VerifyReport> {
    let system_id = cluster.resolve(None)?;
    let repo = ctx.repo.open_without_index().await?;
    let objects = wal::list_objects(&repo, system_id).await?;
    let names: Vec<WalName> = objects.iter().map(|(n, _)| n.clone()).collect();
    let seg_size = segment_size(&repo, system_id, &names).await?;
    let backups = base_backups(&repo, system_id, seg_size).await?;
    let mut bad = Vec::new();
    for (name, _) in &objects {
        if let Err(e) = wal::fetch(&repo, system_id, name).await {
            bad.push(BadObject {
                name: name.as_str().into(),
                error: e.to_string(),
            });
        }
    }
    let timelines = timelines(&names, &backups, seg_size);
    let last_archived = objects
        .iter()
        .filter(|(n, _)| n.is_segment())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(n, m)| last(n, m.last_modified));
    let ok = bad.is_empty() && timelines.iter().all(|t| t.missing.is_empty());
    Ok(VerifyReport {
        system_id,
        segment_size: seg_size,
        timelines,
        bad_objects: bad,
        last_archived,
        files_checked: objects.len(),
        ok,
    })
}

fn last(name: &WalName, at: std::time::SystemTime) -> LastArchived {
    let ts = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    LastArchived {
        name: name.as_str().into(),
        time: ts.to_string(),
        age_seconds: std::time::SystemTime::now()
            .duration_since(at)
            .map_or(0, |d| d.as_secs()),
    }
}

/// (timeline, start segment number, snapshot id) of every physical base
/// backup of the cluster.
async fn base_backups(
    repo: &Repository,
    system_id: u64,
    seg_size: u64,
) -> Result<Vec<(u32, u64, String)>> {
    let mut out = Vec::new();
    for (id, info) in repo.snapshots().await? {
        if info.kind != KIND_PHYSICAL {
            continue;
        }
        let snap = repo.load_snapshot(&id).await?;
        let Ok(meta) = PhysicalMeta::of(&snap) else {
            continue;
        };
        if meta.system_identifier != system_id.to_string() {
            continue;
        }
        let start = lifeboat_sources::postgres::physical::parse_lsn(&meta.start_lsn).unwrap_or(0);
        out.push((meta.timeline, start / seg_size, id.to_string()));
    }
    Ok(out)
}

fn timelines(
    names: &[WalName],
    backups: &[(u32, u64, String)],
    seg_size: u64,
) -> Vec<TimelineCheck> {
    let mut by_tl: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for n in names.iter().filter(|n| n.is_segment()) {
        if let Some(s) = n.segment_number(seg_size) {
            by_tl.entry(n.timeline_id()).or_default().push(s);
        }
    }
    for (tl, _, _) in backups {
        by_tl.entry(*tl).or_default();
    }
    by_tl
        .into_iter()
        .map(|(tl, mut segs)| {
            segs.sort_unstable();
            check_timeline(tl, &segs, backups, seg_size)
        })
        .collect()
}

fn check_timeline(
    tl: u32,
    segs: &[u64],
    backups: &[(u32, u64, String)],
    seg_size: u64,
) -> TimelineCheck {
    let name = |s: u64| segment_name(tl, s, seg_size);
    let mine: Vec<&(u32, u64, String)> = backups.iter().filter(|b| b.0 == tl).collect();
    let from = mine.iter().map(|b| b.1).min().or(segs.first().copied());
    let newest = segs.last().copied();
    let mut missing = Vec::new();
    if let Some(from) = from {
        let mut expect = from;
        for &s in segs.iter().filter(|s| **s >= from) {
            if s > expect {
                missing.push([name(expect), name(s - 1)]);
            }
            expect = s + 1;
        }
        if newest.is_none_or(|n| n < from) {
            // A base backup whose timeline has nothing archived from its start.
            missing.push([name(from), name(from)]);
        }
    }
    TimelineCheck {
        timeline: format!("{tl:08X}"),
        segments: segs.len(),
        first: segs.first().map(|s| name(*s)),
        last: newest.map(name),
        checked_from: from.map(name),
        base_backups: mine.iter().map(|b| [b.2.clone(), name(b.1)]).collect(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB16: u64 = 16 << 20;

    #[test]
    fn missing_runs_from_the_oldest_backup_to_the_newest_segment() {
        let segs = [3, 4, 6, 7, 0x100, 0x101];
        let backups = vec![(1, 2, "b".to_string())];
        let t = check_timeline(1, &segs, &backups, MIB16);
        assert_eq!(
            t.missing,
            vec![
                [
                    "000000010000000000000002".to_string(),
                    "000000010000000000000002".to_string()
                ],
                [
                    "000000010000000000000005".to_string(),
                    "000000010000000000000005".to_string()
                ],
                [
                    "000000010000000000000008".to_string(),
                    "0000000100000000000000FF".to_string()
                ],
            ]
        );
        // Before the oldest backup, nothing is required.
        let t = check_timeline(1, &[1, 5, 6], &[(1, 5, "b".into())], MIB16);
        assert!(t.missing.is_empty(), "{t:?}");
        // No backup on the timeline: continuity from the first archived one.
        let t = check_timeline(2, &[9, 10, 11], &[], MIB16);
        assert!(t.missing.is_empty());
    }
}
