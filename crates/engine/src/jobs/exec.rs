//! Running one scheduled job: each kind calls the engine use case the
//! matching command calls, and reports the figures recorded in the job
//! history. A job fails with the use case's error, or when its report says
//! something is wrong (verify found problems, a restore test failed).

use crate::backup::{self, BackupRequest};
use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::schedule::{JobKind, Schedule};
use crate::{copy, forget, prune, verify};
use lifeboat_repo::jobs::JobFigures;
use lifeboat_repo::CheckOptions;
use std::sync::Arc;

/// Run the job `kind` of `source` once; `rotation` is the number of verify
/// runs recorded before (which slice of packs `read_data_share` reads).
pub async fn run_job(
    ctx: &Ctx,
    source: &str,
    kind: JobKind,
    schedule: &Schedule,
    rotation: u64,
) -> Result<JobFigures> {
    match kind {
        JobKind::Backup | JobKind::Logical => backup_job(ctx, source, None).await,
        JobKind::Physical => backup_job(ctx, source, Some("physical")).await,
        JobKind::Forget => forget_job(ctx, source).await,
        JobKind::Prune => prune_job(ctx).await,
        JobKind::Verify => verify_job(ctx, schedule.read_data_share, rotation).await,
        JobKind::RestoreTest => restore_test_job(ctx, source).await,
        JobKind::Copy => copy_job(ctx, source).await,
    }
}

/// A backup as `lifeboat backup SOURCE` runs it, with its
/// `forget_after_backup` and `copy_to` steps.
async fn backup_job(ctx: &Ctx, source: &str, kind: Option<&str>) -> Result<JobFigures> {
    let req = BackupRequest {
        targets: vec![source.to_string()],
        kind: kind.map(str::to_string),
        ..BackupRequest::default()
    };
    let report = backup::run(ctx, req, Arc::new(Progress::default())).await?;
    if forget::wanted_after_backup(ctx, source) {
        forget::after_backup(ctx, source).await?;
    }
    copy::after_backup(ctx, source).await?;
    let s = &report.snapshot.stats;
    Ok(JobFigures {
        bytes: Some(s.bytes),
        stored_bytes: Some(s.stored_bytes),
        files: Some(s.files),
        snapshot: Some(report.id),
        ..JobFigures::default()
    })
}

async fn forget_job(ctx: &Ctx, source: &str) -> Result<JobFigures> {
    let req = forget::ForgetRequest {
        source: Some(source.to_string()),
        policy: None,
        dry_run: false,
    };
    let report = forget::run(ctx, req).await?;
    Ok(JobFigures {
        snapshots: Some(report.removed as u64),
        ..JobFigures::default()
    })
}

async fn prune_job(ctx: &Ctx) -> Result<JobFigures> {
    let report = prune::run(ctx, prune::PruneRequest::default()).await?;
    Ok(JobFigures {
        bytes: Some(report.bytes_freed),
        ..JobFigures::default()
    })
}

async fn verify_job(ctx: &Ctx, share: Option<f64>, rotation: u64) -> Result<JobFigures> {
    let repo = ctx.repo.open_without_index().await?;
    let opts = CheckOptions {
        read_data_percent: share,
        read_data_rotation: share.map(|_| rotation),
    };
    let r = &lifeboat_repo::check(&repo, opts).await?;
    if !r.is_ok() {
        let first = r
            .problems
            .first()
            .map(|p| format!("{}: {}", p.object, p.message))
            .unwrap_or_default();
        return Err(EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "verify found {} problem(s) and {} damaged snapshot(s), first: {first}; run `lifeboat verify` for the list",
            r.problems.len(),
            r.damaged_snapshots.len()
        ))));
    }
    Ok(JobFigures {
        bytes: Some(r.bytes_read),
        snapshots: Some(r.snapshots as u64),
        ..JobFigures::default()
    })
}

async fn restore_test_job(ctx: &Ctx, source: &str) -> Result<JobFigures> {
    let req = verify::RestoreTestRequest {
        snapshot: None,
        source: Some(source.to_string()),
        to: None,
    };
    let t = verify::restore_test(ctx, req).await?;
    if !t.report.ok {
        let failed: Vec<&str> = t
            .report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        return Err(EngineError::Other(format!(
            "restore test of snapshot {} failed: {}",
            t.id.short(),
            failed.join(", ")
        )));
    }
    Ok(JobFigures {
        snapshot: Some(t.id),
        restore_ms: Some(t.report.restore_ms),
        ..JobFigures::default()
    })
}

async fn copy_job(ctx: &Ctx, source: &str) -> Result<JobFigures> {
    let reports = copy::after_backup(ctx, source).await?;
    Ok(JobFigures {
        snapshots: Some(reports.iter().map(|r| r.copied.len() as u64).sum()),
        stored_bytes: Some(reports.iter().map(|r| r.stored_bytes).sum()),
        ..JobFigures::default()
    })
}
