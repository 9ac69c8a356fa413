//! The one error type of the PostgreSQL source, with messages written for operators.
//!
//! Rules: every variant says what failed *and* what to do about it; secrets never
//! appear in messages (targets are shown through their redacting `Display`); callers
//! can match on variants, and [`PgError::code`] gives a stable short code for JSON output.

use std::path::PathBuf;

/// Result alias for the PostgreSQL source.
pub type Result<T, E = PgError> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to PostgreSQL or running its tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// No usable client tools (pg_dump, pg_restore, pg_dumpall, psql) were found.
    #[error("no PostgreSQL client tools found (searched {}): install postgresql-client or set bin_dir", display_paths(.searched))]
    ToolsNotFound {
        /// Directories that were searched.
        searched: Vec<PathBuf>,
    },
    /// The configured `bin_dir` holds no client tools.
    #[error("bin_dir {} has no pg_dump/pg_restore/psql: point it at PostgreSQL {server_major} (or newer) client tools, or remove bin_dir to search the system", .bin_dir.display())]
    ToolsNotInDir {
        /// The configured directory.
        bin_dir: PathBuf,
        /// Major version of the server.
        server_major: u32,
    },
    /// Only client tools older than the server were found.
    #[error("pg_dump {tool_major} cannot dump a PostgreSQL {server_major} server: install postgresql-client-{server_major} or set bin_dir to a directory with pg_dump {server_major} or newer (found pg_dump {tool_major} in {})", .bin_dir.display())]
    ToolsTooOld {
        /// Major version of the newest tools found.
        tool_major: u32,
        /// Major version of the server.
        server_major: u32,
        /// Where the newest tools were found.
        bin_dir: PathBuf,
    },
    /// A program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// Program path.
        program: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not accept a connection.
    #[error(
        "could not connect to server at {address}: {reason} — is PostgreSQL running? check the URL"
    )]
    Unreachable {
        /// `host:port` or socket path.
        address: String,
        /// Short reason, e.g. "connection refused".
        reason: String,
    },
    /// Host name did not resolve.
    #[error("could not resolve host {host}: check the host in the URL")]
    UnknownHost {
        /// The host name.
        host: String,
    },
    /// Authentication was rejected or no password was available.
    #[error("{detail} for user {user}: check the password in the source URL (or its env:/file reference, or ~/.pgpass)")]
    AuthFailed {
        /// The user name.
        user: String,
        /// The server's wording, e.g. "password authentication failed".
        detail: String,
    },
    /// The role does not exist on the server.
    #[error("role {role} does not exist on the server: check the user in the URL")]
    RoleMissing {
        /// The role name.
        role: String,
    },
    /// The database does not exist.
    #[error("database {database} does not exist: check the database name in the URL, or create it first")]
    DatabaseMissing {
        /// The database name.
        database: String,
    },
    /// Connecting took too long.
    #[error("timed out connecting to {address}: check the host, port and firewall")]
    Timeout {
        /// `host:port`.
        address: String,
    },
    /// A PostgreSQL tool ran but failed; its stderr is included.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// Tool name (psql, pg_dump, ...).
        tool: String,
        /// Exit status as text.
        status: String,
        /// Trimmed stderr of the tool.
        stderr: String,
    },
    /// pg_restore finished but reported errors it ignored.
    #[error("pg_restore reported {count} error(s) during restore; first: {first}")]
    RestoreErrors {
        /// Number of errors pg_restore counted (0 when it did not say).
        count: u64,
        /// The first error message.
        first: String,
    },
    /// A partial restore named tables or schemas the archive does not contain.
    #[error("not in the archive: {}: check the names with `lifeboat ls <snapshot>`", .names.join(", "))]
    NotInArchive {
        /// The names that matched nothing.
        names: Vec<String>,
    },
    /// Output of a tool could not be understood.
    #[error("could not parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Details.
        detail: String,
    },
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A lock could not be had within the lock timeout (another session holds a
    /// conflicting one, e.g. `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`).
    #[error("gave up waiting for a lock after lock_wait_timeout: {detail} — another session holds a conflicting lock (ALTER TABLE, VACUUM FULL, LOCK TABLE ... ACCESS EXCLUSIVE); retry once it is released, or raise lock_wait_timeout (seconds) in the source config")]
    LockTimeout {
        /// The server's message and the statement that waited.
        detail: String,
    },
    /// The connection goes through a transaction-mode pooler.
    #[error("{address} is a transaction-mode connection pooler (the server connection changed between transactions): pg_dump needs one server session for the whole dump; connect directly to the database (usually port 5432) or through the pooler's session mode (Supabase: the session pooler, port 5432)")]
    TransactionPooler {
        /// Where the URL points.
        address: String,
    },
    /// The server or the role refused one more connection.
    #[error("{address} refused another connection ({detail}): a backup holds two at once (a session with the exported snapshot, and pg_dump) and briefly a third (the pooler check); raise the role's limit (ALTER ROLE ... CONNECTION LIMIT 3) or the server's max_connections, or run the backup when fewer clients are connected")]
    TooManyConnections {
        /// Where the URL points.
        address: String,
        /// The server's message.
        detail: String,
    },
    /// The TLS connection could not be set up (certificate, host name, files).
    #[error("TLS connection to {address} failed: {detail}")]
    Tls {
        /// `host:port`.
        address: String,
        /// What failed and what to change.
        detail: String,
    },
    /// The server's pg_hba.conf has no rule that lets this connection in.
    #[error("{address} refused the connection: {detail} — the server's pg_hba.conf has no rule for this host, user, database and encryption; if it says \"no encryption\", the server requires TLS: remove sslmode=disable (or use sslmode=require)")]
    HbaRejected {
        /// `host:port`.
        address: String,
        /// The server's message.
        detail: String,
    },
    /// A scratch cluster could not be created, started or stopped.
    #[error("scratch cluster: {detail}")]
    Cluster {
        /// Details, including the server log tail when available.
        detail: String,
    },
}

impl PgError {
    /// A stable, short machine-readable code for this error (used in `--json` output).
    pub fn code(&self) -> &'static str {
        match self {
            PgError::InvalidUrl { .. } => "pg_invalid_url",
            PgError::ToolsNotFound { .. } | PgError::ToolsNotInDir { .. } => "pg_tools_not_found",
            PgError::ToolsTooOld { .. } => "pg_tools_too_old",
            PgError::Spawn { .. } => "pg_spawn",
            PgError::Unreachable { .. } => "pg_unreachable",
            PgError::UnknownHost { .. } => "pg_unknown_host",
            PgError::AuthFailed { .. } => "pg_auth_failed",
            PgError::RoleMissing { .. } => "pg_role_missing",
            PgError::DatabaseMissing { .. } => "pg_database_missing",
            PgError::Timeout { .. } => "pg_timeout",
            PgError::ToolFailed { .. } => "pg_tool_failed",
            PgError::RestoreErrors { .. } => "pg_restore_errors",
            PgError::NotInArchive { .. } => "pg_not_in_archive",
            PgError::Parse { .. } => "pg_parse",
            PgError::Io { .. } => "pg_io",
            PgError::Cluster { .. } => "pg_cluster",
            PgError::Tls { .. } => "pg_tls",
            PgError::HbaRejected { .. } => "pg_hba_rejected",
            PgError::LockTimeout { .. } => "pg_lock_timeout",
            PgError::TransactionPooler { .. } => "pg_transaction_pooler",
            PgError::TooManyConnections { .. } => "pg_too_many_connections",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PgError::Io {
            context: context.into(),
            source,
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
