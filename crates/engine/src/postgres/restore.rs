//! Logical restore into a PostgreSQL database.
//!
//! Plan: the target database must name a database; it is created when
//! missing, and a non-empty one is refused unless `clean` or `force`.
//! Execute: apply the globals when asked; for a partial restore, read the
//! archive's TOC and select the chosen tables' or schemas' entries (with
//! their indexes, constraints, triggers, sequences); then restore through
//! the parallel path ([`super::restore_fast`]) when it applies, else stream
//! the archive from the repository into one `pg_restore` (or, with
//! `jobs > 1`, spool it to a temporary file first, as `pg_restore -j` needs
//! a seekable file); the outcome's `method` says which and why.

use super::{
    file_content, restore_fast, tools_for, write_blobs, LogicalMeta, DUMP_FILE, GLOBALS_FILE,
};
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{ContentReader, Id, Repository, Snapshot};
use lifeboat_sources::postgres::archive::ArchiveInspector;
use lifeboat_sources::postgres::child::{start_restore, start_script, RestoreRun};
use lifeboat_sources::postgres::selection::{
    drop_unsatisfied, order_data_by_foreign_keys, select_entries,
};
use lifeboat_sources::postgres::toc::{write_list_file, TocEntry};
use lifeboat_sources::postgres::{catalog, platform, ClientTools, PgTarget, RestoreOptions};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Where and how to restore.
pub struct PgLogicalRestore {
    /// Target; must name the database to restore into.
    pub target: PgTarget,
    /// Directory with client tools, if configured.
    pub bin_dir: Option<PathBuf>,
    /// Selection and pg_restore options.
    pub opts: RestoreOptions,
    /// Restore into a non-empty database anyway.
    pub force: bool,
    /// Apply the captured globals (roles) first.
    pub roles: bool,
    /// Only plan: run every check and the selection, change nothing.
    pub dry_run: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct PgRestoreOutcome {
    /// Database restored into.
    pub database: String,
    /// Whether lifeboat created it.
    pub created: bool,
    /// TOC entries restored (partial restores), or `None` for everything.
    pub entries: Option<usize>,
    /// Entries left out on purpose, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Problems applying the globals (e.g. roles that already exist).
    pub globals_warnings: Vec<String>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// With `dry_run`: the archive entries that would be restored
    /// (`pg_restore -l` lines), and nothing was changed.
    pub planned: Option<Vec<String>>,
    /// How the archive was restored: the parallel fast path, or one
    /// streaming pg_restore and why.
    pub method: String,
}

/// Restore a logical snapshot.
pub async fn restore_logical(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    req: PgLogicalRestore,
    progress: Arc<Progress>,
) -> Result<PgRestoreOutcome> {
    let started = std::time::Instant::now();
    let meta = LogicalMeta::of(snap)?;
    let (dump, dump_size) = file_content(repo, snap, DUMP_FILE).await?.ok_or_else(|| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "snapshot has no {DUMP_FILE}"
        )))
    })?;
    let globals = file_content(repo, snap, GLOBALS_FILE).await?;
    progress
        .total_bytes
        .store(dump_size, std::sync::atomic::Ordering::Relaxed);
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || -> Result<PgRestoreOutcome> {
        let database = req
            .target
            .database()
            .ok_or_else(|| EngineError::Config("the restore target URL must name a database, e.g. postgres://host/restored".into()))?
            .to_string();
        let maintenance = req.target.with_database("postgres");
        let (tools, _) = tools_for(&maintenance, req.bin_dir.as_deref())?;
        if tools.major < meta.pg_dump_major {
            return Err(EngineError::Source(format!(
                "the archive was written by pg_dump {}; pg_restore {} cannot read it: install PostgreSQL {} client tools or set bin_dir",
                meta.pg_dump_major, tools.major, meta.pg_dump_major
            )));
        }
        let into_platform = meta.platform.is_some()
            && catalog::database_exists(&tools, &maintenance, &database)?
            && platform::has_platform(&tools, &req.target)?;
        let created = prepare_database(&tools, &maintenance, &req, &database, into_platform)?;
        let mut outcome = PgRestoreOutcome {
            database,
            created,
            entries: None,
            skipped: Vec::new(),
            globals_warnings: Vec::new(),
            seconds: 0.0,
            planned: None,
            method: String::new(),
        };
        if req.dry_run {
            outcome.planned = Some(plan_entries(&repo, &tools, &req, &meta, &dump, created, &mut outcome)?);
            outcome.seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
        if req.roles {
            match &globals {
                Some((ids, _)) => outcome.globals_warnings = apply_globals(&repo, &tools, &req.target, ids)?,
                None => outcome.globals_warnings.push("the snapshot has no globals (backed up with globals = false)".into()),
            }
        }
        let mut opts = req.opts.clone();
        let mut attachments = Default::default();
        match &meta.platform {
            Some(deps) if into_platform => {
                // Platform tables exist with their foreign keys and triggers:
                // their data loads with both held off (superuser only).
                opts.data_only_schemas = deps.data_schemas.clone();
                opts.replica_role = is_superuser(&tools, &req.target)?;
                attachments = platform::existing_attachments(&tools, &req.target, &deps.data_schemas)?;
                if opts.clean {
                    // --clean drops and recreates the user's triggers and
                    // policies on platform tables (a function they call is
                    // dropped too); only the platform's publications stay.
                    attachments.retain(|a| a.starts_with("PUBLICATION "));
                }
            }
            Some(deps) if !req.dry_run => platform::prepare_plain(&tools, &req.target, deps, None)?,
            _ => {}
        }
        let spool = tempfile::Builder::new().prefix("lifeboat-restore-").tempdir().map_err(EngineError::io("creating a temporary directory"))?;
        let mut selected = None;
        let mut reordered = false;
        let list = if opts.needs_list() {
            let toc = archive_toc(&repo, &dump)?;
            let mut existing = catalog::target_catalog(&tools, &req.target)?;
            existing.attachments = attachments;
            let selection = select_entries(&toc, &opts, &meta.dependencies, &existing)?;
            let mut selection = drop_unsatisfied(selection, &toc, &existing);
            if into_platform && !opts.replica_role {
                // The platform tables' foreign keys stay on while their rows
                // load: in key order, by one pg_restore reading a seekable
                // file (rows out of archive order cannot come from a stream).
                let before = selection.entries.clone();
                order_data_by_foreign_keys(&mut selection.entries, &meta.dependencies);
                reordered = selection.entries != before;
            }
            outcome.entries = Some(selection.entries.len());
            outcome.skipped = selection.skipped.clone();
            if into_platform && opts.clean {
                platform::truncate_for_reload(&tools, &req.target, &reloaded_tables(&selection.entries, &existing))?;
            }
            selected = Some(selection.entries.iter().map(|e| e.dump_id).collect());
            let path = spool.path().join("restore.list");
            write_list_file(&selection.entries, &path)?;
            Some(path)
        } else {
            None
        };
        // Data into existing tables: foreign keys and triggers would fire in
        // archive (name) order; a superuser can defer them with replica mode.
        opts.replica_role |= opts.data_only && is_superuser(&tools, &req.target)?;
        let refusal = restore_fast::refusal(&opts, &meta, dump_size);
        if let (None, Some(blocks)) = (refusal, meta.archive.data_blocks.as_deref()) {
            let stored = restore_fast::StoredArchive { ids: &dump, size: dump_size, blocks };
            let streams = restore_fast::restore_fast(&repo, &tools, &req.target, &opts, &stored, selected.as_ref(), spool.path(), &progress)?;
            outcome.method = format!("parallel: definitions, then data over {streams} streams, then indexes and constraints with {streams} jobs");
            outcome.seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
        outcome.method = format!("one pg_restore stream (parallel path not used: {})", refusal.unwrap_or("no data blocks"));
        if reordered {
            opts.jobs = 1;
        }
        let archive = if opts.jobs > 1 || reordered {
            let path = spool.path().join(DUMP_FILE);
            spool_archive(&repo, &dump, &path, &progress)?;
            Some(path)
        } else {
            None
        };
        progress.set_phase("restoring");
        let run = start_restore(&tools, &req.target, &opts, list.as_deref(), archive.as_deref())?;
        run_restore(&repo, run, archive.is_none().then_some(dump.as_slice()), &progress)?;
        if opts.data_only {
            refresh_materialized_views(&repo, &tools, &req.target, &dump, &opts)?;
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    })
    .await
    .expect("restore thread panicked")
}

/// The tables whose rows `entries` load that already exist in the target:
/// with `--clean` into a platform, the platform tables (not dropped and
/// recreated) must be emptied first, together with the user's tables that
/// reference them.
fn reloaded_tables(
    entries: &[TocEntry],
    existing: &catalog::TargetCatalog,
) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|e| e.desc == "TABLE DATA")
        .filter(|e| {
            existing
                .relations
                .contains(&lifeboat_sources::postgres::ident::qualified(
                    e.schema(),
                    &e.tag,
                ))
        })
        .map(|e| (e.schema().to_string(), e.tag.clone()))
        .collect()
}

/// The entries a restore would run, for `--dry-run` (read-only: the TOC
/// comes from the repository, the catalog from the target if it exists).
fn plan_entries(
    repo: &Arc<Repository>,
    tools: &ClientTools,
    req: &PgLogicalRestore,
    meta: &LogicalMeta,
    dump: &[Id],
    missing_database: bool,
    outcome: &mut PgRestoreOutcome,
) -> Result<Vec<String>> {
    let toc = archive_toc(repo, dump)?;
    if !req.opts.needs_list() {
        return Ok(toc
            .iter()
            .filter(|e| e.listed())
            .map(TocEntry::line)
            .collect());
    }
    let existing = if missing_database {
        catalog::TargetCatalog::default()
    } else {
        catalog::target_catalog(tools, &req.target)?
    };
    let selection = select_entries(&toc, &req.opts, &meta.dependencies, &existing)?;
    let selection = drop_unsatisfied(selection, &toc, &existing);
    outcome.entries = Some(selection.entries.len());
    outcome.skipped = selection.skipped;
    Ok(selection.entries.iter().map(TocEntry::line).collect())
}

/// Create the database (unless planning), or check that it may be restored
/// into. Returns whether it was (or, planning, would be) created.
fn prepare_database(
    tools: &ClientTools,
    maintenance: &PgTarget,
    req: &PgLogicalRestore,
    database: &str,
    into_platform: bool,
) -> Result<bool> {
    if !catalog::database_exists(tools, maintenance, database)? {
        if !req.dry_run {
            catalog::create_database(tools, maintenance, database)?;
        }
        return Ok(true);
    }
    let partial = !req.opts.tables.is_empty() || !req.opts.schemas.is_empty() || req.opts.data_only;
    // A Supabase-like target holds the platform: empty means nothing else.
    let platform_schemas: &[&str] = match into_platform {
        true => lifeboat_sources::postgres::dump::SUPABASE_INTERNAL_SCHEMAS,
        false => &[],
    };
    if !req.opts.clean
        && !req.force
        && !catalog::is_database_empty_except(tools, &req.target, platform_schemas)?
    {
        return Err(EngineError::TargetNotEmpty(format!(
            "database {database:?} is not empty: pass --clean to drop and recreate the restored objects, or --force to restore into it as it is{}; nothing was changed",
            if partial { " (a partial restore into a live database needs --force)" } else { "" }
        )));
    }
    Ok(false)
}

pub(crate) fn apply_globals(
    repo: &Arc<Repository>,
    tools: &ClientTools,
    target: &PgTarget,
    ids: &[Id],
) -> Result<Vec<String>> {
    let mut sql = Vec::new();
    ContentReader::new(repo.clone(), ids.to_vec(), 1)
        .read_to_end(&mut sql)
        .map_err(|e| {
            EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
                "reading globals: {e}"
            )))
        })?;
    let text = String::from_utf8_lossy(&sql);
    if let Some((line, command)) = psql_meta_command(&text).into_iter().next() {
        return Err(EngineError::Source(format!(
            "globals.sql line {line} holds the psql meta-command {command:?} outside any quoted name or string; \
             pg_dumpall never writes one there, so a crafted role or setting name (e.g. with a line break) put it in, \
             and psql would run it (`\\!` runs a shell command as this OS user): refusing to apply the globals; \
             restore without --roles and create the roles by hand; nothing was changed"
        )));
    }
    let mut child = start_script(tools, target)?;
    let mut stdin = child.stdin().expect("psql -f - reads stdin");
    // psql stops reading only when it exits; its wait reports why.
    let _ = stdin.write_all(&sql);
    drop(stdin);
    let out = child.wait()?;
    // With ON_ERROR_STOP=0 a failing statement still exits 0; any other
    // status (1: psql's own failure, 2: the connection failed or was lost)
    // means the roles were not (all) applied.
    if !out.status.success() {
        return Err(lifeboat_sources::postgres::classify::classify_failure(
            "psql (applying globals.sql)",
            target,
            &out.status.to_string(),
            &out.stderr,
        )
        .into());
    }
    Ok(out
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(|l| l.trim().to_string())
        .collect())
}

/// psql meta-commands (a backslash outside quotes and comments) in `sql`, as
/// (line number, the command word). The `\\restrict` / `\\unrestrict` lines
/// recent pg_dumpall writes (to block exactly this injection) are allowed.
pub(crate) fn psql_meta_command(sql: &str) -> Vec<(usize, String)> {
    let b = sql.as_bytes();
    let mut found = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, true);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                line_start = true;
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' => {
                let escapes = c == b'\'' && i > 0 && matches!(b[i - 1], b'E' | b'e');
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        line += usize::from(b.get(i + 1) == Some(&b'\n'));
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                i += 1;
            }
            b'$' if !(i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) => {
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|x| !(x.is_ascii_alphanumeric() || *x == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' => {
                        let tag = &sql[i..=e];
                        let body = e + 1;
                        let close = sql[body..]
                            .find(tag)
                            .map(|p| body + p + tag.len())
                            .unwrap_or(b.len());
                        line += sql[i..close].matches('\n').count();
                        i = close;
                    }
                    _ => i += 1,
                }
            }
            b'\\' => {
                let rest = &sql[i..sql[i..].find('\n').map_or(b.len(), |p| i + p)];
                let word: String = rest.split_whitespace().next().unwrap_or("\\").to_string();
                let allowed = line_start
                    && matches!(word.as_str(), "\\restrict" | "\\unrestrict")
                    && rest.split_whitespace().count() == 2;
                if !allowed {
                    found.push((line, word));
                }
                i += rest.len();
                continue;
            }
            _ => i += 1,
        }
        line_start = line_start && c.is_ascii_whitespace();
    }
    found
}

/// The archive's TOC with dependencies, read from its first blobs.
pub(crate) fn archive_toc(repo: &Arc<Repository>, dump: &[Id]) -> Result<Vec<TocEntry>> {
    let mut inspector = ArchiveInspector::new();
    let mut reader = ContentReader::new(repo.clone(), dump.to_vec(), 1);
    while !inspector.toc_complete() {
        match reader.next_blob()? {
            Some(blob) => inspector.feed(&blob),
            None => {
                inspector.end_of_stream();
                break;
            }
        }
    }
    Ok(inspector.toc())
}

fn spool_archive(
    repo: &Arc<Repository>,
    dump: &[Id],
    path: &std::path::Path,
    progress: &Progress,
) -> Result<()> {
    progress.set_phase("spooling archive for parallel restore");
    // Plaintext database content: created 0600, never readable by others.
    let mut out = lifeboat_sources::process::create_private(path)
        .map_err(EngineError::io(format!("creating {}", path.display())))?;
    write_blobs(repo, dump, &mut out, None)?
        .map_err(EngineError::io(format!("writing {}", path.display())))?;
    Ok(())
}

/// Run pg_restore, feeding `stdin_blobs` to its stdin when given.
fn run_restore(
    repo: &Arc<Repository>,
    mut run: RestoreRun,
    stdin_blobs: Option<&[Id]>,
    progress: &Progress,
) -> Result<()> {
    let mut feed_error = None;
    if let Some(ids) = stdin_blobs {
        let mut stdin = run
            .stdin()
            .expect("pg_restore reads the archive from stdin");
        // A write error means pg_restore stopped reading; its status says why.
        if let Err(e) = write_blobs(repo, ids, &mut stdin, Some(progress)) {
            feed_error = Some(e);
            run.kill();
        }
    }
    let finished = run.finish();
    if let Some(e) = feed_error {
        return Err(e);
    }
    Ok(finished?)
}

fn is_superuser(tools: &ClientTools, target: &PgTarget) -> Result<bool> {
    Ok(catalog::is_superuser(tools, target)?)
}

/// `pg_restore --data-only` leaves materialized views unpopulated (their
/// REFRESH counts as schema): refresh the ones in scope, in archive order.
fn refresh_materialized_views(
    repo: &Arc<Repository>,
    tools: &ClientTools,
    target: &PgTarget,
    dump: &[Id],
    opts: &RestoreOptions,
) -> Result<()> {
    for entry in archive_toc(repo, dump)? {
        let in_scope = opts.tables.is_empty()
            && (opts.schemas.is_empty() || opts.schemas.iter().any(|s| s == entry.schema()));
        if entry.desc == "MATERIALIZED VIEW DATA" && in_scope {
            catalog::refresh_materialized_view(tools, target, entry.schema(), &entry.tag)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod meta_command_tests {
    use super::psql_meta_command;

    #[test]
    fn a_meta_command_smuggled_by_a_role_name_is_found() {
        // pg_dumpall names the role in a comment; a line break in the name ends it.
        let sql = "SET standard_conforming_strings = on;\n--\n-- User Config \"x\n\\! touch /tmp/pwned\"\n--\nCREATE ROLE \"x\n\\! touch /tmp/pwned\";\n";
        assert_eq!(psql_meta_command(sql), vec![(4, "\\!".to_string())]);
        // Not only at the start of a line.
        assert_eq!(
            psql_meta_command("-- a\nfoo \\! id\n"),
            vec![(2, "\\!".to_string())]
        );
    }

    #[test]
    fn backslashes_in_quotes_comments_and_restrict_lines_are_data() {
        let sql = "\\restrict abc123\nSET x = on;\n-- comment \\! not a command\nCREATE ROLE \"a\\!b\";\n\
                   ALTER ROLE \"a\\!b\" SET search_path TO 'x\\!', E'it\\'s \\! fine';\n\
                   COMMENT ON ROLE r IS $c$ \\! $c$; /* \\! */\n\\unrestrict abc123\n";
        assert_eq!(psql_meta_command(sql), Vec::<(usize, String)>::new());
        assert_eq!(psql_meta_command("SELECT 1; \\restrict k\n").len(), 1);
        assert_eq!(psql_meta_command("\\connect other\n").len(), 1);
    }
}
