//! The `pg_restore` command and reading its outcome.
//!
//! The archive arrives on pg_restore's stdin (the engine pipes repository bytes
//! in), or from a file: `pg_restore -j N` cannot read stdin.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use serde::{Deserialize, Serialize};

use super::classify::classify_failure;
use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::ident::quote_literal;
use super::tools::ClientTools;

/// How to restore. `tables`/`schemas` empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreOptions {
    /// Only these relations (`schema.table`, or `table` in any schema), with
    /// everything that belongs to them.
    pub tables: Vec<String>,
    /// Only these schemas, with everything in them.
    pub schemas: Vec<String>,
    /// Definitions only.
    pub schema_only: bool,
    /// Data only.
    pub data_only: bool,
    /// Drop objects before recreating them (`--clean --if-exists`).
    pub clean: bool,
    /// Parallel jobs (`-j`); needs the archive as a file, and excludes
    /// `single_transaction`.
    pub jobs: u32,
    /// Do not set object owners (`--no-owner`): objects belong to the restoring user.
    pub no_owner: bool,
    /// Do not restore GRANT/REVOKE (`--no-privileges`).
    pub no_privileges: bool,
    /// All or nothing (`--single-transaction`, implies exit on first error).
    pub single_transaction: bool,
    /// Stop at the first error (`--exit-on-error`). Without it pg_restore goes on
    /// and reports the count at the end; [`check_restore`] turns that into an error either way.
    pub exit_on_error: bool,
    /// Schemas whose definitions the target already owns (e.g. Supabase's `auth`
    /// and `storage`, see `dump::Profile::data_only_schemas`): only their data is restored.
    pub data_only_schemas: Vec<String>,
    /// Run with `session_replication_role = replica` so user triggers and FK
    /// checks do not fire while data loads (what `supabase db dump` data files do).
    pub replica_role: bool,
    /// Server settings (`name=value`) for pg_restore's sessions, passed in
    /// `PGOPTIONS` after the target's own `options` (e.g. memory for the
    /// index builds of a parallel restore). Not stored.
    #[serde(skip)]
    pub session_settings: Vec<String>,
}

impl RestoreOptions {
    /// Whether this restore needs a filtered TOC list (`-L`) rather than the whole archive.
    pub fn needs_list(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty() || !self.data_only_schemas.is_empty()
    }
}

/// The `pg_restore` command restoring into `target`'s database.
///
/// Reads the archive from stdin (piped) when `archive` is None; `jobs > 1` is only
/// used with a file. `list_file` is a `-L` list from [`write_list_file`]. The
/// database name is passed as a `dbname=` connection string (no secrets); the
/// host, user and password come from the environment.
pub fn restore_command(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &RestoreOptions,
    list_file: Option<&Path>,
    archive: Option<&Path>,
) -> Command {
    let mut cmd = crate::process::command(&tools.pg_restore);
    cmd.arg("--no-password");
    if let Some(db) = target.database() {
        cmd.arg(format!("--dbname=dbname={}", quote_literal(db)));
    } else {
        // pg_restore needs -d to restore rather than print SQL; an empty
        // connection string leaves everything to the environment and libpq defaults.
        cmd.arg("--dbname=");
    }
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if opts.no_owner {
        cmd.arg("--no-owner");
    }
    if opts.no_privileges {
        cmd.arg("--no-privileges");
    }
    if opts.schema_only {
        cmd.arg("--schema-only");
    }
    if opts.data_only {
        cmd.arg("--data-only");
    }
    let parallel = archive.is_some() && opts.jobs > 1;
    if parallel {
        cmd.arg(format!("--jobs={}", opts.jobs));
    } else if opts.single_transaction {
        cmd.arg("--single-transaction");
    }
    if opts.exit_on_error {
        cmd.arg("--exit-on-error");
    }
    if let Some(l) = list_file {
        cmd.arg(format!("--use-list={}", l.display()));
    }
    target.apply_env(&mut cmd);
    if let Some(options) = session_options(target, opts) {
        cmd.env("PGOPTIONS", options);
    }
    match archive {
        Some(a) => {
            cmd.arg(a).stdin(Stdio::null());
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// `PGOPTIONS` for the restore sessions: with replica role alone, only
/// that (as before); with extra settings, the target's `options` first.
fn session_options(target: &PgTarget, opts: &RestoreOptions) -> Option<String> {
    let mut settings: Vec<String> = Vec::new();
    if opts.replica_role {
        settings.push("-c session_replication_role=replica".into());
    }
    if opts.session_settings.is_empty() {
        return (!settings.is_empty()).then(|| settings.join(" "));
    }
    if let Some(own) = target.param("options") {
        settings.insert(0, own.to_string());
    }
    settings.extend(opts.session_settings.iter().map(|s| format!("-c {s}")));
    Some(settings.join(" "))
}

/// Turns pg_restore's exit status and stderr into a result: connection problems
/// become their specific errors; `errors ignored on restore: N` (or any failure)
/// becomes [`PgError::RestoreErrors`] with the first error line.
pub fn check_restore(target: &PgTarget, status: ExitStatus, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let specific = classify_failure("pg_restore", target, &status.to_string(), stderr);
    if !matches!(specific, PgError::ToolFailed { .. }) {
        return Err(specific);
    }
    let count = stderr
        .lines()
        .find_map(|l| l.split("errors ignored on restore:").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let first = stderr
        .lines()
        .find(|l| l.contains("error:") && !l.contains("errors ignored on restore"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| format!("pg_restore exited with {status}"));
    let mut detail = first;
    // The line after "error:" from pg_restore usually carries the failing command.
    if let Some(cmd) = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Command was:"))
    {
        detail.push_str(&format!(" ({})", cmd.trim()));
    }
    Err(PgError::RestoreErrors {
        count,
        first: detail,
    })
}

/// With `--clean`, pg_restore also tries to drop each partition's copy of an
/// inherited constraint, which PostgreSQL refuses ("cannot drop inherited
/// constraint"); dropping the parent's constraint removes them anyway.
/// Returns true when those are the only errors in pg_restore's output.
pub fn only_inherited_constraint_drop_errors(stderr: &str) -> bool {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR:")).collect();
    !errors.is_empty()
        && errors
            .iter()
            .all(|l| l.contains("cannot drop inherited constraint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_settings_follow_the_targets_own_options_in_pgoptions() {
        let t = PgTarget::parse("postgres://u@h/db?options=-c%20work_mem%3D8MB").unwrap();
        let plain = RestoreOptions::default();
        assert_eq!(session_options(&t, &plain), None);
        let tuned = RestoreOptions {
            session_settings: vec!["maintenance_work_mem=512MB".into()],
            ..RestoreOptions::default()
        };
        assert_eq!(
            session_options(&t, &tuned).as_deref(),
            Some("-c work_mem=8MB -c maintenance_work_mem=512MB")
        );
        let replica = RestoreOptions {
            replica_role: true,
            ..RestoreOptions::default()
        };
        assert_eq!(
            session_options(&t, &replica).as_deref(),
            Some("-c session_replication_role=replica")
        );
    }

    #[test]
    fn restore_errors_surface() {
        use std::os::unix::process::ExitStatusExt;
        let t = PgTarget::parse("postgres://u@h/db").unwrap();
        let stderr = "pg_restore: error: could not execute query: ERROR:  relation \"x\" already exists\nCommand was: CREATE TABLE x ();\npg_restore: warning: errors ignored on restore: 2\n";
        let err = check_restore(&t, ExitStatus::from_raw(256), stderr).unwrap_err();
        match err {
            PgError::RestoreErrors { count, first } => {
                assert_eq!(count, 2);
                assert!(first.contains("already exists"));
            }
            other => panic!("{other:?}"),
        }
        assert!(check_restore(&t, ExitStatus::from_raw(0), "").is_ok());
    }
}
