//! The engine's error type: repository, source and configuration errors
//! with stable codes ([`EngineError::code`]) the CLI maps to exit codes.

use lifeboat_repo::Error as RepoError;
use lifeboat_sources::files::FilesError;

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
    /// PostgreSQL or its tools failed.
    #[error(transparent)]
    Postgres(lifeboat_sources::postgres::PgError),
    /// A `command` source's program failed, timed out or could not start.
    #[error("command source: {0}")]
    Command(#[from] lifeboat_sources::command::CommandError),
    /// A source system failed (PostgreSQL, ...).
    #[error("{0}")]
    Source(String),
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
    /// Stable code for JSON output and exit-code mapping.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Repo(e) => e.code(),
            EngineError::Files(FilesError::Exists(_)) | EngineError::TargetNotEmpty(_) => {
                "target_not_empty"
            }
            EngineError::Files(_) => "source_io",
            EngineError::Config(_) => "config",
            EngineError::Source(_) | EngineError::Postgres(_) | EngineError::Command(_) => "source",
            EngineError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                "no_space"
            }
            EngineError::Io { .. } => "io",
        }
    }

    /// Wrap an I/O error with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Io { context, source }
    }
}
