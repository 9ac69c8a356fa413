//! `verify --restore-test`: restore a logical snapshot into a scratch cluster
//! and prove it: every table exists with the row count recorded at backup
//! time, critical tables are non-empty, user SQL assertions hold. The
//! result and the measured restore time (RTO) are stored in the repository
//! (`verifications/`), so `snapshots` and `status` can show them.
//!
//! The scratch cluster is private (socket only, password, empty environment:
//! see `ScratchCluster`), and the archive is restored by a role without
//! superuser rights ([`RESTORE_ROLE`], owner of the target database, objects
//! restored `--no-owner`), so SQL in a dump cannot act as superuser. Only an
//! archive that needs a superuser (extensions not marked trusted, event
//! triggers, languages, foreign data wrappers, subscriptions, text search
//! parsers or templates, default privileges of another role) is restored as
//! the superuser, and the record says why
//! ([`RestoreTestReport::superuser_reason`]). Roles (the globals) are always
//! created by the superuser, before the restore, and so is what a platform
//! (Supabase) dump presupposes (`platform::prepare_plain`).

use super::restore::{apply_globals, archive_toc};
use super::{
    file_content, restore_logical, tools_for, LogicalMeta, PgLogicalRestore, DUMP_FILE,
    GLOBALS_FILE,
};
use crate::config::VerifyConfig;
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{
    Check, Id, Repository, RestoreTestReport, Snapshot, VerificationKind, VerificationRecord,
};
use lifeboat_sources::postgres::catalog;
use lifeboat_sources::postgres::ident::{quote_ident, split_qualified};
use lifeboat_sources::postgres::platform;
use lifeboat_sources::postgres::{ClientTools, PgTarget, RestoreOptions, ScratchCluster};
use std::path::PathBuf;
use std::sync::Arc;

/// The role without superuser rights that restores archives in restore tests.
pub const RESTORE_ROLE: &str = "lifeboat_restore";

/// TOC entry kinds only a superuser can restore.
const SUPERUSER_KINDS: &[&str] = &[
    "EVENT TRIGGER",
    "PROCEDURAL LANGUAGE",
    "FOREIGN DATA WRAPPER",
    "SUBSCRIPTION",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    // `ALTER DEFAULT PRIVILEGES FOR ROLE <another role>` (Supabase's for postgres).
    "DEFAULT ACL",
];

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
    let started = std::time::Instant::now();
    let prepared = prepare(repo, snap, &meta, &cluster, &dbname, bin_dir.clone()).await;
    let (restored, restore_as, superuser_reason) = match prepared {
        Ok((restore_as, reason)) => {
            let restored = restore_logical(
                repo,
                snap,
                PgLogicalRestore {
                    target: restore_as.clone(),
                    bin_dir: bin_dir.clone(),
                    opts: RestoreOptions {
                        no_owner: true,
                        ..RestoreOptions::default()
                    },
                    force: false,
                    roles: false,
                    dry_run: false,
                },
                Arc::new(Progress::default()),
            )
            .await;
            (restored, restore_as, reason)
        }
        Err(e) => (Err(e), cluster.target(), None),
    };
    let target = cluster.target().with_database(&dbname);
    let restore_ms = started.elapsed().as_millis() as u64;
    let mut checks = vec![Check {
        name: "restore".into(),
        ok: restored.is_ok(),
        detail: match &restored {
            Ok(o) => format!(
                "restored into a scratch PostgreSQL {} cluster in {:.1}s as {}{}",
                meta.server_major,
                o.seconds,
                restore_as.user().unwrap_or_default(),
                match &superuser_reason {
                    Some(r) => format!(" (superuser: {r})"),
                    None => " (no superuser rights)".to_string(),
                }
            ),
            Err(e) => e.to_string(),
        },
    }];
    let mut tables_checked = 0;
    if restored.is_ok() {
        let verify = verify.clone();
        let user_target = restore_as.clone();
        let (c, n) = tokio::task::spawn_blocking(move || -> Result<(Vec<Check>, usize)> {
            let (tools, _) = tools_for(&target, bin_dir.as_deref())?;
            check_restored(&tools, &target, &user_target, &meta, &verify)
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
        restored_as: restore_as.user().unwrap_or_default().to_string(),
        superuser_reason,
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

/// Creates the roles (as superuser) and the target database, and decides
/// who restores: returns the restoring role's target (database `dbname`) and,
/// when that is the superuser, why.
async fn prepare(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    meta: &LogicalMeta,
    cluster: &ScratchCluster,
    dbname: &str,
    bin_dir: Option<PathBuf>,
) -> Result<(PgTarget, Option<String>)> {
    let (dump, _) = file_content(repo, snap, DUMP_FILE).await?.ok_or_else(|| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "snapshot has no {DUMP_FILE}"
        )))
    })?;
    let globals = match meta.globals {
        true => file_content(repo, snap, GLOBALS_FILE).await?,
        false => None,
    };
    let (repo, superuser, dbname) = (repo.clone(), cluster.target(), dbname.to_string());
    let meta = meta.clone();
    let (role, password) = (
        cluster.target_as(RESTORE_ROLE),
        cluster.password().to_string(),
    );
    // The in-process client blocks: it runs off the async threads.
    tokio::task::spawn_blocking(move || -> Result<(PgTarget, Option<String>)> {
        let (tools, _) = tools_for(&superuser, bin_dir.as_deref())?;
        catalog::create_login_role(&tools, &superuser, RESTORE_ROLE, &password)?;
        if let Some((ids, _)) = globals {
            // Warnings (e.g. "role postgres already exists") are expected here.
            apply_globals(&repo, &tools, &superuser, &ids)?;
        }
        let reason = superuser_reason(&tools, &superuser, &archive_toc(&repo, &dump)?)?;
        let owner = match reason {
            Some(_) => superuser.user().unwrap_or_default().to_string(),
            None => RESTORE_ROLE.to_string(),
        };
        catalog::create_database_owned_by(&tools, &superuser, &dbname, &owner)?;
        if let Some(deps) = &meta.platform {
            // What the dump presupposes (reserved roles, the extensions'
            // schema), made by the superuser, the schema owned by the restorer.
            platform::prepare_plain(
                &tools,
                &superuser.with_database(&dbname),
                deps,
                Some(&owner),
            )?;
        }
        let restore_as = match reason {
            Some(_) => superuser.with_database(&dbname),
            None => role.with_database(&dbname),
        };
        Ok((restore_as, reason))
    })
    .await
    .expect("prepare thread panicked")
}

/// Why restoring `toc` needs a superuser, or `None` when the database owner can.
fn superuser_reason(
    tools: &ClientTools,
    superuser: &PgTarget,
    toc: &[lifeboat_sources::postgres::TocEntry],
) -> Result<Option<String>> {
    let mut needs: Vec<String> = toc
        .iter()
        .filter(|e| SUPERUSER_KINDS.contains(&e.desc.as_str()))
        .map(|e| format!("{} {}", e.desc.to_lowercase(), e.tag))
        .collect();
    let extensions: Vec<&str> = toc
        .iter()
        .filter(|e| e.desc == "EXTENSION" && e.tag != "plpgsql")
        .map(|e| e.tag.as_str())
        .collect();
    if !extensions.is_empty() {
        // `trusted` exists from PostgreSQL 13; before, no extension is trusted.
        let trusted = catalog::trusted_extensions(tools, superuser).unwrap_or_default();
        needs.extend(
            extensions
                .iter()
                .filter(|x| !trusted.iter().any(|t| t == *x))
                .map(|x| format!("extension {x} (not trusted)")),
        );
    }
    Ok((!needs.is_empty()).then(|| format!("the archive creates {}", needs.join(", "))))
}

/// Row counts and critical tables are read as the superuser (exact counts
/// whatever the row-level security; only lifeboat's own queries); the user's
/// assertions run as the role that restored (`user_target`).
fn check_restored(
    tools: &ClientTools,
    target: &PgTarget,
    user_target: &PgTarget,
    meta: &LogicalMeta,
    verify: &VerifyConfig,
) -> Result<(Vec<Check>, usize)> {
    let mut checks = Vec::new();
    let with_rows: Vec<_> = meta.tables.iter().filter(|t| t.rows.is_some()).collect();
    let names: Vec<String> = with_rows.iter().map(|t| t.name.clone()).collect();
    let found = catalog::exact_row_counts(tools, target, &names)?;
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
        let (ok, detail) = match catalog::first_value(tools, target, &sql) {
            Ok(Some(v)) if v == "1" => (true, "exists and has rows".to_string()),
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
        let (ok, detail) = match catalog::first_value(tools, user_target, sql) {
            Ok(v) => {
                let v = v.unwrap_or_default();
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
    Ok(lifeboat_repo::verification::verifications_checked(repo).await?)
}
