//! `verify --restore-test` of a `clickhouse` snapshot.
//!
//! Every database of the snapshot is restored under a scratch name
//! (`lifeboat_verify_<random>_<db>`) on the source's server (or the server
//! given), with the restore's own code path; then, per table with data and
//! per partition, `count()` and the content hash are computed on the
//! scratch copy with the same query the backup used and compared with what
//! the snapshot recorded, and every view and materialized view must exist.
//! The scratch databases are dropped afterwards, also when the restore or a
//! check failed. The result and the measured restore time are stored as a
//! verification record (docs/FORMAT.md §11).

use super::restore::{inner_table_name, restore_clickhouse, ChRestore};
use super::{ChTarget, ClickhouseMeta, TableRecord};
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::verification::{Check, VerificationKind, VerificationRecord};
use lifeboat_repo::{Id, Repository, RestoreTestReport, Snapshot};
use lifeboat_sources::clickhouse::catalog::{self, quote_ident, TableKind};
use lifeboat_sources::clickhouse::http::ChClient;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// Restore-test `snap` on `target`, record the result, return the report.
pub async fn restore_test(
    repo: &Arc<Repository>,
    id: Id,
    snap: &Snapshot,
    target: ChTarget,
) -> Result<RestoreTestReport> {
    let meta = ClickhouseMeta::of(snap)?;
    let prefix = format!("lifeboat_verify_{}", random_hex()?);
    let map: BTreeMap<String, String> = meta
        .databases
        .iter()
        .map(|d| (d.name.clone(), format!("{prefix}_{}", d.name)))
        .collect();
    let client = target.client()?;
    let started = std::time::Instant::now();
    let restored = restore_clickhouse(
        repo,
        snap,
        ChRestore {
            target: Some(target.clone()),
            database_map: Some(map.clone()),
            ..Default::default()
        },
        Arc::new(Progress::default()),
    )
    .await;
    let restore_ms = started.elapsed().as_millis() as u64;
    let checked = match restored {
        Ok(_) => {
            let (client, meta, map) = (client, meta.clone(), map.clone());
            tokio::task::spawn_blocking(move || {
                let checks = check(&client, &meta, &map);
                drop_scratch(&client, &map);
                checks
            })
            .await
            .expect("check thread panicked")
        }
        Err(e) => {
            let client = target.client()?;
            tokio::task::spawn_blocking(move || drop_scratch(&client, &map))
                .await
                .expect("cleanup thread panicked");
            return Err(e);
        }
    };
    let (mut checks, tables_checked) = checked?;
    checks.sort_by_key(|c| c.ok);
    let report = RestoreTestReport {
        snapshot: id,
        ok: checks.iter().all(|c| c.ok),
        restore_ms,
        tables_checked,
        checks,
        restored_as: target.user.clone(),
        superuser_reason: None,
    };
    let record = VerificationRecord {
        version: lifeboat_repo::verification::VERIFICATION_VERSION,
        kind: VerificationKind::RestoreTest,
        time: crate::open::now_rfc3339(),
        host: crate::open::hostname(),
        source: snap.source.clone(),
        report: report.clone(),
    };
    lifeboat_repo::verification::put_verification(repo, &record).await?;
    Ok(report)
}

/// Compare every restored partition with the snapshot: (checks, tables checked).
fn check(
    c: &ChClient,
    meta: &ClickhouseMeta,
    map: &BTreeMap<String, String>,
) -> Result<(Vec<Check>, usize)> {
    let features = catalog::features(c)?;
    let mut checks = Vec::new();
    let mut tables = 0;
    for db in &meta.databases {
        let scratch = &map[&db.name];
        for t in &db.tables {
            let name = match &t.inner_of {
                Some(mv) => inner_table_name(c, &features, scratch, mv, false)?,
                None => t.name.clone(),
            };
            let exists = c
                .query_text(&format!(
                    "EXISTS TABLE {}",
                    catalog::qualified(scratch, &name)
                ))?
                .trim()
                == "1";
            if !t.kind.has_data() {
                checks.push(Check {
                    name: format!("{}.{} exists", db.name, t.name),
                    ok: exists,
                    detail: format!("{} restored as {scratch}.{name}", t.engine),
                });
                continue;
            }
            tables += 1;
            if !exists {
                checks.push(Check {
                    name: format!("{}.{}", db.name, t.name),
                    ok: false,
                    detail: "not restored".into(),
                });
                continue;
            }
            checks.extend(check_table(c, &db.name, scratch, &name, t)?);
        }
    }
    Ok((checks, tables))
}

/// One check per partition: rows and content hash as recorded.
fn check_table(
    c: &ChClient,
    db: &str,
    scratch: &str,
    name: &str,
    t: &TableRecord,
) -> Result<Vec<Check>> {
    let by_id = t.kind == TableKind::MergeTree && catalog::probe_partition_id(c, scratch, name)?;
    let columns = t.physical_columns();
    let mut out = Vec::new();
    for p in &t.partitions {
        let filter = catalog::partition_filter(&t.partition_key, &p.id, &p.value, by_id);
        let sql = catalog::fingerprint_sql(scratch, name, &columns, filter.as_deref());
        let (rows, hash) = catalog::fingerprint(c, &sql)?;
        let ok = rows == p.rows && hash.to_string() == p.hash;
        out.push(Check {
            name: format!("{db}.{} partition {}", t.name, p.id),
            ok,
            detail: if ok {
                format!("{rows} rows, hash {hash}")
            } else {
                format!(
                    "expected {} rows, hash {}; the restored copy has {rows} rows, hash {hash}",
                    p.rows, p.hash
                )
            },
        });
    }
    Ok(out)
}

/// Drop the scratch databases (best effort: a failure here must not hide
/// the test's result; the names are unique per run).
fn drop_scratch(c: &ChClient, map: &BTreeMap<String, String>) {
    for scratch in map.values() {
        let _ = c.execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(scratch)));
    }
}

/// 8 hex digits from the kernel's random source.
fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(EngineError::io("reading /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
