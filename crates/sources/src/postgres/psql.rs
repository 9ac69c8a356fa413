//! Running SQL scripts through `psql` ([`run_sql`]: test and demo fixtures),
//! and the [`Sql`] seam catalog queries use (the in-process client:
//! [`OneShot`] or a held session).
//!
//! `psql` runs with `-X -q -A -t --no-password -v ON_ERROR_STOP=1`, fields separated
//! by U+001F and records terminated by NUL (`-0`): NUL can never occur in a
//! PostgreSQL text value, so values containing newlines, pipes or tabs survive.
//! SQL goes in on stdin and connection details (including the password) through
//! the environment, so nothing sensitive is ever on argv. Failures are classified
//! from psql's stderr ([`classify_failure`]).

use std::process::{Command, Stdio};

use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::tools::ClientTools;

/// Field separator used between columns of a row.
pub const FIELD_SEP: char = '\u{1f}';

/// The `psql` command for `target`, reading SQL from stdin; stdout carries rows.
pub fn psql_command(tools: &ClientTools, target: &PgTarget) -> Command {
    let mut cmd = crate::process::command(&tools.psql);
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        "-0",
    ])
    .arg(format!("--field-separator={FIELD_SEP}"))
    .args(["-f", "-"]);
    target.apply_env(&mut cmd);
    // Stable, parseable output whatever the caller's environment says.
    cmd.env("PGCLIENTENCODING", "UTF8");
    cmd
}

/// Rows of a result: each a list of text fields.
pub type Rows = Vec<Vec<String>>;

/// Where catalog SQL runs: a `psql` per call ([`OneShot`]), or a held
/// [`Session`](super::session::Session) (e.g. inside the backup's exported snapshot).
pub trait Sql {
    /// Runs `sql` and returns every row of every result set.
    fn rows(&mut self, sql: &str) -> Result<Rows>;
}

/// One client connection per statement batch (a [`Session`](super::session::Session)
/// opened and closed around it).
pub struct OneShot<'a> {
    /// Tools to use.
    pub tools: &'a ClientTools,
    /// Server and database.
    pub target: &'a PgTarget,
}

impl Sql for OneShot<'_> {
    fn rows(&mut self, sql: &str) -> Result<Rows> {
        let mut session = super::session::Session::open(self.tools, self.target)?;
        let rows = session.query(sql);
        session.close();
        rows
    }
}

impl Sql for super::session::Session {
    fn rows(&mut self, sql: &str) -> Result<Rows> {
        self.query(sql)
    }
}

/// Runs `sql` (one or more statements) and returns every row of every result set.
pub fn run_sql(tools: &ClientTools, target: &PgTarget, sql: &str) -> Result<Vec<Vec<String>>> {
    let out = run_psql_raw(tools, target, sql)?;
    Ok(parse_rows(&out))
}

/// Runs `sql` and returns raw stdout (records terminated by NUL).
fn run_psql_raw(tools: &ClientTools, target: &PgTarget, sql: &str) -> Result<String> {
    let mut cmd = psql_command(tools, target);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let out = super::child::output_of(cmd, "psql", target, Some(sql.to_string()))?;
    String::from_utf8(out).map_err(|_| PgError::Parse {
        what: "psql output".into(),
        detail: "not UTF-8".into(),
    })
}

/// Splits psql output (NUL-terminated records, U+001F-separated fields) into rows.
pub fn parse_rows(out: &str) -> Vec<Vec<String>> {
    let mut records: Vec<&str> = out.split('\0').collect();
    if records.last().is_some_and(|r| r.trim().is_empty()) {
        records.pop();
    }
    records
        .into_iter()
        .map(|r| r.split(FIELD_SEP).map(str::to_string).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_newlines_and_separators() {
        let out = "1\u{1f}a\nb\u{0}2\u{1f}x|y\u{0}3\u{1f}\u{0}";
        assert_eq!(
            parse_rows(out),
            vec![
                vec!["1".to_string(), "a\nb".to_string()],
                vec!["2".to_string(), "x|y".to_string()],
                vec!["3".to_string(), String::new()],
            ]
        );
        assert!(parse_rows("").is_empty());
    }
}
