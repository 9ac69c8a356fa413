//! A held database session: one connection of the in-process client
//! (`postgres` crate), reusable by anything that must run several statements on
//! one server connection.
//!
//! Used where several statements must run on one server connection: the
//! backup's snapshot session (`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
//! SELECT pg_export_snapshot()`, catalog queries in that snapshot, kept open
//! until `pg_dump --snapshot` has finished), and the transaction-pooler check
//! (does `pg_backend_pid()` stay the same across transactions?).
//!
//! The client connects from the same [`PgTarget`] the tools use, with the
//! password handed over in-process. Statements go through the simple query
//! protocol (no prepared statements, so transaction poolers answer them too);
//! failures are classified by SQLSTATE ([`classify_client_error`]).
//!
//! TLS follows libpq's `sslmode` ([`super::tls`]).
//!
//! Physical backups hold one session across `pg_backup_start` and
//! `pg_backup_stop` ([`Session::backup_start`], [`Session::backup_stop`]).

use postgres::SimpleQueryMessage;

use super::classify::classify_client_error;
use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::psql::Rows;
use super::tools::ClientTools;

/// One open session on one server connection.
pub struct Session {
    client: Box<postgres::Client>,
    target: PgTarget,
}

/// What `pg_backup_stop` (or `pg_stop_backup` before 15) returns: the end of
/// the backup and the two files that go into the backup next to the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStop {
    /// The WAL location where the backup ends (e.g. `0/2000100`).
    pub lsn: String,
    /// Contents of `backup_label`.
    pub labelfile: String,
    /// Contents of `tablespace_map` (empty without tablespaces).
    pub spcmapfile: String,
}

impl Session {
    /// Connects to `target` (fails here when the server cannot be reached).
    /// `_tools` is unused since every session is an in-process client.
    pub fn open(_tools: &ClientTools, target: &PgTarget) -> Result<Self> {
        let config = target.client_config()?;
        let client = blocking(|| super::tls::connect(target, config))?;
        Ok(Session {
            client: Box::new(client),
            target: target.clone(),
        })
    }

    /// Runs `sql` (one or more statements) in this session; returns every row
    /// of every result set, as text (NULL as the empty string, like psql).
    pub fn query(&mut self, sql: &str) -> Result<Rows> {
        let client = &mut self.client;
        let messages = blocking(|| client.simple_query(sql))
            .map_err(|e| classify_client_error(&self.target, &e))?;
        Ok(text_rows(messages))
    }

    /// The server's `server_version_num` (e.g. 150004).
    pub fn server_version_num(&mut self) -> Result<u32> {
        let rows = self.query("SHOW server_version_num;")?;
        let text = rows
            .first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default();
        text.trim().parse().map_err(|_| PgError::Parse {
            what: "server_version_num".into(),
            detail: format!("{text:?} is not a number"),
        })
    }

    /// Starts a non-exclusive physical backup in this session
    /// (`pg_backup_start` on 15+, `pg_start_backup` before); returns the start
    /// LSN. The session must stay open until [`Session::backup_stop`].
    pub fn backup_start(&mut self, label: &str, fast: bool) -> Result<String> {
        let label = super::ident::quote_literal(label);
        let sql = if self.server_version_num()? >= 150000 {
            format!("SELECT pg_backup_start({label}, {fast})::text;")
        } else {
            format!("SELECT pg_start_backup({label}, {fast}, false)::text;")
        };
        self.single_row(&sql, 1).map(|mut r| r.remove(0))
    }

    /// Ends the backup started by [`Session::backup_start`] without waiting
    /// for WAL archiving (`wait_for_archive => false`).
    pub fn backup_stop(&mut self) -> Result<BackupStop> {
        let sql = if self.server_version_num()? >= 150000 {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false);"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false);"
        };
        let mut row = self.single_row(sql, 3)?.into_iter();
        let mut next = || row.next().unwrap_or_default();
        Ok(BackupStop {
            lsn: next(),
            labelfile: next(),
            spcmapfile: next(),
        })
    }

    /// The one row of `sql`, with `columns` fields.
    fn single_row(&mut self, sql: &str, columns: usize) -> Result<Vec<String>> {
        let rows = self.query(sql)?;
        match <[Vec<String>; 1]>::try_from(rows) {
            Ok([row]) if row.len() == columns => Ok(row),
            _ => Err(PgError::Parse {
                what: "server answer".into(),
                detail: format!("expected one row of {columns} field(s) for {sql}"),
            }),
        }
    }

    /// Ends the session (an open transaction is rolled back by the server).
    pub fn close(self) {
        let client = self.client;
        let _ = blocking(move || client.close());
    }
}

/// Runs `f`, which blocks on the client's own runtime: on a worker thread of
/// a multi-threaded tokio runtime (an async caller) through `block_in_place`,
/// since starting a runtime inside a runtime panics.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The data rows of a simple-query result, as text.
fn text_rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Whether `session` goes through a transaction-mode pooler, judged by
/// behaviour, whatever the port: on a direct (or session-pooled) connection
/// the backend process id stays the same for the whole session, and no other
/// connection opened meanwhile shares it. Behind a transaction pooler one of
/// the two fails: two transactions of the session land on different server
/// connections, or a second client gets the server connection the idle
/// session just used.
pub fn is_transaction_pooler(
    tools: &ClientTools,
    target: &PgTarget,
    session: &mut Session,
) -> Result<bool> {
    let pid = |rows: Rows| rows.into_iter().next().and_then(|r| r.into_iter().next());
    let first = pid(session.query("SELECT pg_backend_pid();")?);
    let second = pid(session.query("SELECT pg_backend_pid();")?);
    if first != second {
        return Ok(true);
    }
    let mut probe = Session::open(tools, target)?;
    let other = pid(probe.query("SELECT pg_backend_pid();")?);
    probe.close();
    Ok(other == first)
}
