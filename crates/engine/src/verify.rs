//! The verify use cases: the repository check ([`verify`]) and, for
//! PostgreSQL logical snapshots, the restore test ([`restore_test`]).

use crate::clickhouse::{ChTarget, KIND_CLICKHOUSE};
use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::postgres::{self, KIND_LOGICAL};
use lifeboat_repo::{check, CheckOptions, CheckReport, Id, Repository, RestoreTestReport};
use serde::Serialize;
use std::sync::Arc;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// Also read and re-hash data: this percentage of packs (100 = all).
    pub read_data_percent: Option<f64>,
}

/// A lock object found in the repository (for display).
#[derive(Debug, Clone, Serialize)]
pub struct LockNote {
    /// Storage key.
    pub key: String,
    /// What holds it (`backup`), when readable.
    pub kind: Option<String>,
    /// Holder's host.
    pub host: Option<String>,
    /// Holder's process id.
    pub pid: Option<u32>,
    /// When the holder started.
    pub started: Option<String>,
    /// Its last heartbeat.
    pub heartbeat: Option<String>,
    /// No heartbeat for `LOCK_STALE_AFTER`: its backup is gone.
    pub stale: bool,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// What the check found.
    pub report: CheckReport,
    /// Backup locks present (running or stale).
    pub locks: Vec<LockNote>,
}

/// Parse a `--read-data` percentage (`10%`, `10`, `100%`).
pub fn parse_read_data(s: &str) -> Result<f64> {
    let bad = || {
        EngineError::Config(format!(
            "--read-data={s}: expected a percentage in (0, 100], such as 10%"
        ))
    };
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| bad())?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(bad());
    }
    Ok(v)
}

/// Check structure, and with `read_data_percent` the data too.
pub async fn verify_repository(
    repo: &Arc<Repository>,
    read_data_percent: Option<f64>,
) -> Result<CheckReport> {
    let opts = CheckOptions {
        read_data_percent,
        read_data_rotation: None,
    };
    Ok(check(repo, opts).await?)
}

/// Open the repository and check it; lists the lock objects too.
pub async fn verify(ctx: &Ctx, req: VerifyRequest) -> Result<VerifyReport> {
    // verify checks the repository itself, never a local copy of it.
    let mut spec = ctx.repo.clone();
    spec.no_cache = true;
    let repo = spec.open_without_index().await?;
    let report = verify_repository(&repo, req.read_data_percent).await?;
    let locks = lock_notes(&repo).await?;
    Ok(VerifyReport { report, locks })
}

async fn lock_notes(repo: &Repository) -> Result<Vec<LockNote>> {
    let now = std::time::SystemTime::now();
    let locks = lifeboat_repo::lock::list_locks(&**repo.storage()).await?;
    Ok(locks
        .iter()
        .map(|l| {
            let info = l.info.as_ref();
            LockNote {
                key: l.meta.key.clone(),
                kind: info.map(|i| i.kind.clone()),
                host: info.map(|i| i.host.clone()),
                pid: info.map(|i| i.pid),
                started: info.map(|i| i.started.clone()),
                heartbeat: info.map(|i| i.heartbeat.clone()),
                stale: l.is_stale(now),
            }
        })
        .collect())
}

/// Which snapshot to restore-test.
#[derive(Debug, Clone, Default)]
pub struct RestoreTestRequest {
    /// Id prefix or `latest` (the default).
    pub snapshot: Option<String>,
    /// The latest of this source.
    pub source: Option<String>,
    /// ClickHouse snapshots: test on this server (`http(s)://...`) instead
    /// of the source's own.
    pub to: Option<String>,
}

/// A restore test and the snapshot it tested.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestOutcome {
    /// Snapshot tested.
    pub id: Id,
    /// Its source.
    pub source: String,
    /// Its time.
    pub time: String,
    /// What the test found (also stored as a verification record).
    pub report: RestoreTestReport,
}

/// Restore a logical snapshot into a scratch cluster, check it with the
/// source's `verify` config, and record the result in the repository.
/// Without a snapshot or source: the latest PostgreSQL logical snapshot.
pub async fn restore_test(ctx: &Ctx, req: RestoreTestRequest) -> Result<RestoreTestOutcome> {
    let repo = ctx.repo.open().await?;
    let spec = req.snapshot.as_deref().unwrap_or("latest");
    let (id, snap) = if spec == "latest" && req.source.is_none() {
        let (id, _) = repo
            .snapshots()
            .await?
            .into_iter()
            .rev()
            .find(|(_, s)| s.kind == KIND_LOGICAL || s.kind == KIND_CLICKHOUSE)
            .ok_or_else(|| {
                EngineError::Other("no PostgreSQL logical or ClickHouse snapshot to test".into())
            })?;
        (id, repo.load_snapshot(&id).await?)
    } else {
        repo.find_snapshot(spec, req.source.as_deref()).await?
    };
    if snap.kind == KIND_CLICKHOUSE {
        let report = clickhouse_restore_test(ctx, &repo, id, &snap, req.to.as_deref()).await?;
        return Ok(RestoreTestOutcome {
            id,
            source: snap.source,
            time: snap.time,
            report,
        });
    }
    let verify_cfg = ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == snap.source))
        .map(|s| s.verify.clone())
        .unwrap_or_default();
    let bin_dir = ctx.source_bin_dir(&snap.source);
    let report = postgres::restore_test(&repo, id, &snap, &verify_cfg, bin_dir).await?;
    Ok(RestoreTestOutcome {
        id,
        source: snap.source,
        time: snap.time,
        report,
    })
}

/// A ClickHouse restore test on the source's server (its url and
/// credentials from the config) or on `to` with the source's credentials.
async fn clickhouse_restore_test(
    ctx: &Ctx,
    repo: &Arc<Repository>,
    id: Id,
    snap: &lifeboat_repo::Snapshot,
    to: Option<&str>,
) -> Result<RestoreTestReport> {
    let src = ctx
        .config
        .as_ref()
        .and_then(|c| c.sources.iter().find(|s| s.name == snap.source))
        .ok_or_else(|| {
            EngineError::Config(format!(
                "the restore test of a ClickHouse snapshot needs its source {:?} in the config (server and credentials)",
                snap.source
            ))
        })?;
    let target = ChTarget::from_source(src, to)?;
    crate::clickhouse::restore_test::restore_test(repo, id, snap, target).await
}
