//! PostgreSQL: connection targets, client tool discovery, logical dump and restore, scratch clusters.
//!
//! Everything here drives PostgreSQL's own client tools through `std::process`;
//! the engine connects their stdin/stdout to the repository. Main pieces:
//! - [`conn::PgTarget`]: a parsed `postgres://` URL; passwords go to the child
//!   environment, never to argv or logs.
//! - [`tools::ClientTools`]: `pg_dump`/`pg_restore`/`pg_dumpall`/`psql` of a version
//!   that fits the server.
//! - [`query`]: SQL through `psql` (server version, sizes, row counts,
//!   [`query::DependencyInfo`] for partial restores), with classified errors.
//! - [`session::Session`]: one held `psql` session (the backup's snapshot session).
//! - [`dump`]: `pg_dump -Fc -Z0` and `pg_dumpall --globals-only` commands, and the
//!   Supabase profile.
//! - [`restore`]: `pg_restore` commands, TOC parsing and the entry selection that
//!   makes a partial restore bring a table's indexes, constraints and triggers.
//! - [`archive::ArchiveInspector`]: row counts per table from the archive as it streams.
//! - [`cluster::ScratchCluster`]: throwaway clusters for tests and restore drills.
//! - [`compare`]: normalised schema dumps and table checksums to prove a restore.
//! - [`error::PgError`]: the error type of all of the above.

pub mod archive;
pub mod cluster;
pub mod compare;
pub mod conn;
pub mod dump;
pub mod error;
pub mod query;
pub mod restore;
pub mod session;
pub mod tools;

pub use cluster::ScratchCluster;
pub use conn::PgTarget;
pub use dump::{DumpOptions, Profile};
pub use error::PgError;
pub use query::{DependencyInfo, TableStat, TargetCatalog};
pub use restore::{RestoreOptions, Selection, TocEntry};
pub use tools::ClientTools;
