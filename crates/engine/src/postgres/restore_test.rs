//! `verify --restore-test`: restore a logical snapshot into a scratch cluster
//! and prove it: every table exists with the row count recorded at backup
//! time, critical tables are non-empty, user SQL assertions hold. The
//! result and the measured restore time (RTO) are stored in the repository
//! (`verifications/`), so `snapshots` and `status` can show them.

use super::{restore_logical, tools_for, LogicalMeta, PgLogicalRestore};
use crate::config::VerifyConfig;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{Id, Repository, Snapshot};
use lifeboat_sources::postgres::query::{self, quote_ident, split_qualified};
use lifeboat_sources::postgres::{ClientTools, RestoreOptions, ScratchCluster};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// One check of a restore test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Details (expected vs found).
    pub detail: String,
}

/// The outcome of a restore test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreTestReport {
    /// Snapshot tested.
    pub snapshot: Id,
    /// All checks passed.
    pub ok: bool,
    /// Measured restore time, milliseconds (the RTO of this snapshot).
    pub restore_ms: u64,
    /// Tables checked.
    pub tables_checked: usize,
    /// Individual checks (failures first).
    pub checks: Vec<Check>,
}

/// What is stored under `verifications/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// `restore-test`.
    pub kind: String,
    /// When it ran.
    pub time: String,
    /// Host that ran it.
    pub host: String,
    /// Source of the snapshot.
    pub source: String,
    /// The report.
    pub report: RestoreTestReport,
}

/// Run a restore test of `snap` and record it.
pub async fn restore_test(
    repo: &Arc<Repository>,
    id: Id,
    snap: &Snapshot,
    verify: &VerifyConfig,
    bin_dir: Option<PathBuf>,
) -> Result<RestoreTestReport> {
    repo.ensure_writable()?;
    let meta = LogicalMeta::of(snap)?;
    let server_bin = ClientTools::find(meta.server_major, bin_dir.as_deref())?.bin_dir;
    let cluster = tokio::task::spawn_blocking(move || ScratchCluster::start(&server_bin))
        .await
        .expect("cluster thread panicked")?;
    let dbname = if meta.database.is_empty() {
        "restore_test".to_string()
    } else {
        meta.database.clone()
    };
    let target = cluster.target().with_database(&dbname);
    let started = std::time::Instant::now();
    let restored = restore_logical(
        repo,
        snap,
        PgLogicalRestore {
            target: target.clone(),
            bin_dir: bin_dir.clone(),
            opts: RestoreOptions::default(),
            force: false,
            roles: meta.globals,
            dry_run: false,
        },
        Arc::new(Progress::default()),
    )
    .await;
    let restore_ms = started.elapsed().as_millis() as u64;
    let mut checks = vec![Check {
        name: "restore".into(),
        ok: restored.is_ok(),
        detail: match &restored {
            Ok(o) => format!(
                "restored into a scratch PostgreSQL {} cluster in {:.1}s",
                meta.server_major, o.seconds
            ),
            Err(e) => e.to_string(),
        },
    }];
    let mut tables_checked = 0;
    if restored.is_ok() {
        let verify = verify.clone();
        let (c, n) = tokio::task::spawn_blocking(move || -> Result<(Vec<Check>, usize)> {
            let (tools, _) = tools_for(&target, bin_dir.as_deref())?;
            check_restored(&tools, &target, &meta, &verify)
        })
        .await
        .expect("check thread panicked")?;
        checks.extend(c);
        tables_checked = n;
    }
    drop(cluster);
    checks.sort_by_key(|c| c.ok);
    let report = RestoreTestReport {
        snapshot: id,
        ok: checks.iter().all(|c| c.ok),
        restore_ms,
        tables_checked,
        checks,
    };
    let record = VerificationRecord {
        kind: "restore-test".into(),
        time: crate::open::now_rfc3339(),
        host: crate::open::hostname(),
        source: snap.source.clone(),
        report: report.clone(),
    };
    repo.put_sealed_json("verifications", &record).await?;
    Ok(report)
}

fn check_restored(
    tools: &ClientTools,
    target: &lifeboat_sources::postgres::PgTarget,
    meta: &LogicalMeta,
    verify: &VerifyConfig,
) -> Result<(Vec<Check>, usize)> {
    let mut checks = Vec::new();
    let with_rows: Vec<_> = meta.tables.iter().filter(|t| t.rows.is_some()).collect();
    let names: Vec<String> = with_rows.iter().map(|t| t.name.clone()).collect();
    let found = query::exact_row_counts(tools, target, &names)?;
    let mut mismatches = Vec::new();
    for t in &with_rows {
        let expected = t.rows.unwrap_or(0) as i64;
        match found.get(&t.name) {
            Some(&n) if n == expected => {}
            Some(&n) => mismatches.push(format!("{}: {n} rows, backup had {expected}", t.name)),
            None => mismatches.push(format!("{}: missing", t.name)),
        }
    }
    checks.push(Check {
        name: "row counts".into(),
        ok: mismatches.is_empty(),
        detail: if mismatches.is_empty() {
            format!(
                "{} tables have the row counts recorded at backup time",
                with_rows.len()
            )
        } else {
            mismatches.join("; ")
        },
    });
    for table in &verify.critical_tables {
        let (schema, name) = split_qualified(table);
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {}.{} LIMIT 1) s",
            quote_ident(schema.as_deref().unwrap_or("public")),
            quote_ident(&name)
        );
        let (ok, detail) = match query::run_sql(tools, target, &sql) {
            Ok(rows) if rows.first().and_then(|r| r.first()).map(String::as_str) == Some("1") => {
                (true, "exists and has rows".to_string())
            }
            Ok(_) => (false, "exists but is empty".to_string()),
            Err(e) => (false, e.to_string()),
        };
        checks.push(Check {
            name: format!("critical table {table}"),
            ok,
            detail,
        });
    }
    for sql in &verify.assertions {
        let (ok, detail) = match query::run_sql(tools, target, sql) {
            Ok(rows) => {
                let v = rows
                    .first()
                    .and_then(|r| r.first())
                    .cloned()
                    .unwrap_or_default();
                (
                    matches!(v.as_str(), "t" | "true" | "1"),
                    format!("returned {v:?}"),
                )
            }
            Err(e) => (false, e.to_string()),
        };
        checks.push(Check {
            name: format!("assertion {sql}"),
            ok,
            detail,
        });
    }
    Ok((checks, with_rows.len()))
}

/// Every restore test recorded in the repository, oldest first.
pub async fn verifications(repo: &Repository) -> Result<Vec<VerificationRecord>> {
    Ok(verifications_checked(repo).await?.0)
}

/// [`verifications`], and separately the records that cannot be read (a
/// damaged record is reported, and does not hide the others).
pub async fn verifications_checked(
    repo: &Repository,
) -> Result<(Vec<VerificationRecord>, Vec<(Id, lifeboat_repo::Error)>)> {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for id in repo.list_ids("verifications").await? {
        match repo
            .get_sealed_json::<VerificationRecord>("verifications", &id)
            .await
        {
            Ok(v) => out.push(v),
            Err(e @ (lifeboat_repo::Error::Corrupt(_) | lifeboat_repo::Error::Storage(_))) => {
                damaged.push((id, e))
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by(|a, b| a.time.cmp(&b.time));
    Ok((out, damaged))
}

impl From<lifeboat_sources::postgres::PgError> for EngineError {
    fn from(e: lifeboat_sources::postgres::PgError) -> Self {
        EngineError::Postgres(e)
    }
}
