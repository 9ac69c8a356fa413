//! The repository's error type.
//!
//! Rules: every error names the object or location it concerns and, where
//! there is one, the fix. Errors are never downgraded to warnings on the way
//! up; callers add context instead of re-wrapping. [`Error::code`] gives a
//! stable machine-readable code per variant.

use lifeboat_storage::StorageError;

/// Result type of repository operations.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong in the repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage operation failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No repository at the location.
    #[error("no lifeboat repository at {0}: run `lifeboat init` first, or check --repo / LIFEBOAT_REPOSITORY")]
    NotARepository(String),
    /// `init` on a location that already holds a repository.
    #[error("{0} already holds a lifeboat repository; nothing was changed")]
    AlreadyInitialized(String),
    /// The repository was written by a format this build does not know.
    #[error("{location}: repository format version {found} is not supported by this lifeboat (it reads version {supported}); upgrade lifeboat")]
    UnsupportedVersion {
        /// Where the repository lives.
        location: String,
        /// Version found in the config.
        found: u64,
        /// Version this build reads.
        supported: u32,
    },
    /// An object (or a repository feature) written by a newer lifeboat:
    /// the data is not damaged, this build cannot read (or write) it.
    #[error("{0}; upgrade lifeboat")]
    Unsupported(String),
    /// No key file opens with the given passphrase.
    #[error("wrong password: no key in {0} opens with it (check --password-file / LIFEBOAT_PASSWORD_FILE)")]
    WrongPassword(String),
    /// A raw key file that does not belong to this repository.
    #[error("the key file does not open the repository at {0}: it belongs to another repository or is damaged")]
    WrongKey(String),
    /// Stored bytes fail authentication, hashing or parsing.
    #[error("corrupted repository data: {0}")]
    Corrupt(String),
    /// An object the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's request is invalid (e.g. an ambiguous id prefix).
    #[error("{0}")]
    Invalid(String),
    /// Two different objects claim one name (a WAL file archived twice
    /// with different content): nothing was overwritten.
    #[error("{0}")]
    Conflict(String),
    /// A backup could not keep its lock fresh (see `lock`).
    #[error("backup lock lost: {0}")]
    LockLost(String),
}

impl Error {
    /// A stable code for scripts and JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Storage(StorageError::NotFound { .. }) => "storage_not_found",
            Error::Storage(StorageError::NoSpace { .. }) => "no_space",
            Error::Storage(StorageError::ShortRead { .. }) => "corrupt",
            Error::Storage(_) => "storage",
            Error::NotARepository(_) => "not_a_repository",
            Error::AlreadyInitialized(_) => "already_initialized",
            Error::UnsupportedVersion { .. } | Error::Unsupported(_) => "unsupported_version",
            Error::WrongPassword(_) | Error::WrongKey(_) => "wrong_key",
            Error::Corrupt(_) => "corrupt",
            Error::NotFound(_) => "not_found",
            Error::Invalid(_) => "invalid",
            Error::LockLost(_) => "lock_lost",
            Error::Conflict(_) => "conflict",
        }
    }
}
