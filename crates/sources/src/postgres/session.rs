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
//! TLS fallback: the client is built without TLS, so a target with
//! `sslmode=require`, `verify-ca` or `verify-full` is served by one `psql`
//! process (libpq) reading statements from a pipe instead. After each batch
//! of statements an `\echo` of a random marker line ends its output; psql
//! flushes after every result, so the marker arrives as soon as the batch is
//! done. With `ON_ERROR_STOP` a failing statement ends psql; its stderr is then
//! classified like any other tool failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, ChildStdout};

use postgres::SimpleQueryMessage;

use super::classify::{classify_client_error, classify_failure};
use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::psql::{parse_rows, spawn_psql, Rows};
use super::tools::ClientTools;
use crate::process::Running;

/// One open session on one server connection.
pub struct Session {
    inner: Inner,
}

enum Inner {
    Client {
        client: Box<postgres::Client>,
        target: PgTarget,
    },
    Psql(PsqlPipe),
}

impl Session {
    /// Connects to `target` (fails here when the server cannot be reached).
    pub fn open(tools: &ClientTools, target: &PgTarget) -> Result<Self> {
        let inner = match target.client_config()? {
            Some(config) => Inner::Client {
                client: Box::new(
                    config
                        .connect(postgres::NoTls)
                        .map_err(|e| classify_client_error(target, &e))?,
                ),
                target: target.clone(),
            },
            None => Inner::Psql(PsqlPipe::open(tools, target)?),
        };
        Ok(Session { inner })
    }

    /// Runs `sql` (one or more statements) in this session; returns every row
    /// of every result set, as text (NULL as the empty string, like psql).
    pub fn query(&mut self, sql: &str) -> Result<Rows> {
        match &mut self.inner {
            Inner::Client { client, target } => {
                let messages = client
                    .simple_query(sql)
                    .map_err(|e| classify_client_error(target, &e))?;
                Ok(text_rows(messages))
            }
            Inner::Psql(p) => p.query(sql),
        }
    }

    /// Ends the session (an open transaction is rolled back by the server).
    pub fn close(self) {
        match self.inner {
            Inner::Client { client, .. } => {
                let _ = client.close();
            }
            Inner::Psql(p) => p.close(),
        }
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

/// One `psql` process reading statements from a pipe (TLS targets only).
struct PsqlPipe {
    running: Option<Running>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    target: PgTarget,
    marker: String,
}

impl PsqlPipe {
    fn open(tools: &ClientTools, target: &PgTarget) -> Result<Self> {
        let mut running = spawn_psql(tools, target)?;
        let stdin = running.take_stdin();
        let stdout = BufReader::new(running.take_stdout().expect("stdout is piped"));
        let marker = random_marker()?;
        let mut session = PsqlPipe {
            running: Some(running),
            stdin,
            stdout,
            target: target.clone(),
            marker,
        };
        session.query("SELECT 1;")?;
        Ok(session)
    }

    fn query(&mut self, sql: &str) -> Result<Rows> {
        let batch = format!("{sql}\n\\echo {}\n", self.marker);
        let sent = self
            .stdin
            .as_mut()
            .map(|s| s.write_all(batch.as_bytes()).and_then(|()| s.flush()));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.failure());
        }
        let end = format!("{}\n", self.marker);
        let mut out = Vec::new();
        loop {
            let n = self
                .stdout
                .read_until(b'\n', &mut out)
                .map_err(|e| PgError::io("reading from psql", e))?;
            if n == 0 {
                return Err(self.failure());
            }
            if out.ends_with(end.as_bytes()) {
                let body = out.len() - end.len();
                if body == 0 || out[body - 1] == 0 {
                    out.truncate(body);
                    break;
                }
            }
        }
        let text = String::from_utf8(out).map_err(|_| PgError::Parse {
            what: "psql output".into(),
            detail: "not UTF-8".into(),
        })?;
        Ok(parse_rows(&text))
    }

    /// The error that ended the session (psql exited: its status and stderr).
    fn failure(&mut self) -> PgError {
        self.stdin.take();
        match self.running.take().map(Running::wait) {
            Some(Ok(out)) => {
                classify_failure("psql", &self.target, &out.status.to_string(), &out.stderr)
            }
            Some(Err(e)) => e.into(),
            None => PgError::io(
                "psql session",
                std::io::Error::other("the session has already ended"),
            ),
        }
    }

    fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing stdin makes psql disconnect and exit.
        self.stdin.take();
        if let Some(r) = self.running.take() {
            let _ = r.wait();
        }
    }
}

impl Drop for PsqlPipe {
    fn drop(&mut self) {
        // Closing stdin makes psql disconnect and exit.
        self.shutdown();
    }
}

/// The end-of-batch marker: 128 random bits, so no value a database user
/// stores (a table or schema name in a catalog result) can be made to equal it
/// in advance; a process id and a clock reading could be guessed.
fn random_marker() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PgError::io("reading /dev/urandom", e))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("lifeboat-end-of-batch-{hex}"))
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

#[cfg(test)]
mod tests {
    #[test]
    fn markers_are_random_not_pid_and_clock() {
        let (a, b) = (
            super::random_marker().unwrap(),
            super::random_marker().unwrap(),
        );
        assert_ne!(a, b);
        let hex = a.strip_prefix("lifeboat-end-of-batch-").unwrap();
        assert_eq!(hex.len(), 32, "{a}");
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
