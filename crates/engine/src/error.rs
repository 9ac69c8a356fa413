//! The engine's error type: repository, source and configuration errors
//! with stable codes ([`EngineError::code`]) the CLI maps to exit codes.
//!
//! Source errors keep their type on the way up: [`EngineError::Postgres`]
//! holds the [`PgError`], whose own code ([`EngineError::detail`], e.g.
//! `pg_transaction_pooler`) decides the class (a pooler in transaction mode
//! is a configuration problem, an unreachable server a source failure).

use lifeboat_repo::Error as RepoError;
use lifeboat_sources::clickhouse::ChError;
use lifeboat_sources::command::CommandError;
use lifeboat_sources::files::FilesError;
use lifeboat_sources::postgres::PgError;

/// Result of engine operations.
pub type Result<T> = std::result::Result<T, EngineError>;

/// What can go wrong in a use-case.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// From the repository.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// From the files source.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A bad config file or option.
    #[error("{0}")]
    Config(String),
    /// Restore target is not empty / would be overwritten.
    #[error("{0}")]
    TargetNotEmpty(String),
    /// The secret configured for another repository (a copy target) does
    /// not open it; the message names where that secret is configured.
    #[error("{0}")]
    WrongTargetKey(String),
    /// PostgreSQL or its tools failed.
    #[error(transparent)]
    Postgres(PgError),
    /// A `command` source's program failed, timed out or could not start.
    #[error("command source: {0}")]
    Command(#[from] CommandError),
    /// ClickHouse failed (unreachable, refused, an exception, a broken stream).
    #[error(transparent)]
    Clickhouse(#[from] ChError),
    /// A source system failed (PostgreSQL, ...).
    #[error("{0}")]
    Source(String),
    /// Point-in-time recovery ended before its target (missing WAL, or a
    /// target before the base backup's consistent point).
    #[error("{0}")]
    Recovery(String),
    /// A failure without a more specific class (exit 1): a request this
    /// build does not support, nothing to act on, ...
    #[error("{0}")]
    Other(String),
    /// Another process holds a lock this command needs exclusively (a
    /// second prune while one runs): exit 21.
    #[error("{0}")]
    Busy(String),
    /// I/O outside the repository.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// Stable code for JSON output and exit-code mapping (docs/CLI.md).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Repo(e) => e.code(),
            EngineError::Files(FilesError::Exists(_)) | EngineError::TargetNotEmpty(_) => {
                "target_not_empty"
            }
            EngineError::Files(_) => "source_io",
            EngineError::Config(_) => "config",
            EngineError::WrongTargetKey(_) => "wrong_key",
            EngineError::Postgres(e) => postgres_code(e),
            EngineError::Command(e) => command_code(e),
            EngineError::Clickhouse(ChError::BadUrl { .. }) => "config",
            EngineError::Clickhouse(_) => "source",
            EngineError::Source(_) => "source",
            EngineError::Recovery(_) => "recovery_incomplete",
            EngineError::Other(_) => "error",
            EngineError::Busy(_) => "busy",
            EngineError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                "no_space"
            }
            EngineError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                "target_not_empty"
            }
            EngineError::Io { .. } => "io",
        }
    }

    /// The source's own code for a source error (`pg_unreachable`,
    /// `pg_lock_timeout`, ...), finer than [`EngineError::code`].
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            EngineError::Postgres(e) => Some(e.code()),
            EngineError::Command(e) => Some(e.code()),
            EngineError::Clickhouse(e) => Some(e.code()),
            _ => None,
        }
    }

    /// Wrap an I/O error with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Io { context, source }
    }
}

/// The class of a PostgreSQL error: what the operator has to fix.
fn postgres_code(e: &PgError) -> &'static str {
    match e.code() {
        // The request or config is wrong, not the server.
        "pg_invalid_url" | "pg_transaction_pooler" => "config",
        _ if caused_by_full_disk(e) => "no_space",
        _ => "source",
    }
}

/// The class of a `command` source's failure: an empty command is a
/// configuration problem, a full disk is `no_space`, the rest a source failure.
fn command_code(e: &CommandError) -> &'static str {
    match e {
        CommandError::Empty => "config",
        _ if caused_by_full_disk(e) => "no_space",
        _ => "source",
    }
}

/// Whether an I/O error in `e`'s chain is "no space left on device".
fn caused_by_full_disk(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(libc::ENOSPC) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl From<PgError> for EngineError {
    fn from(e: PgError) -> Self {
        EngineError::Postgres(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_errors_keep_their_class() {
        let pooler = EngineError::from(PgError::TransactionPooler {
            address: "127.0.0.1:6432".into(),
        });
        assert_eq!(pooler.code(), "config");
        assert_eq!(pooler.detail(), Some("pg_transaction_pooler"));
        let url = EngineError::from(PgError::InvalidUrl { reason: "x".into() });
        assert_eq!(url.code(), "config");
        let full = EngineError::from(PgError::Io {
            context: "writing".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        assert_eq!(full.code(), "no_space");
        let down = EngineError::from(PgError::Io {
            context: "reading".into(),
            source: std::io::Error::other("x"),
        });
        assert_eq!(down.code(), "source");
        assert_eq!(down.detail(), Some("pg_io"));
    }

    #[test]
    fn command_errors_keep_their_class() {
        let failed = EngineError::from(CommandError::Failed {
            program: "sh".into(),
            status: "exit status: 3".into(),
            stderr: "boom".into(),
        });
        assert_eq!(failed.code(), "source");
        assert_eq!(failed.detail(), Some("command_failed"));
        let empty = EngineError::from(CommandError::Empty);
        assert_eq!(empty.code(), "config");
        let full = EngineError::from(CommandError::Io {
            program: "sh".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        assert_eq!(full.code(), "no_space");
        assert_eq!(full.detail(), Some("command_io"));
    }
}
