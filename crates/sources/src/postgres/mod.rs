//! PostgreSQL: connection targets, client tool discovery, logical dump and restore, scratch clusters.
//!
//! Everything here drives PostgreSQL's own client tools through the one runner
//! in [`crate::process`]; [`child`] hands the engine each tool as a reader or
//! writer plus `finish()`, which the engine connects to the repository. Main pieces:
//! - [`conn::PgTarget`]: a parsed `postgres://` URL; passwords go to the child
//!   environment, never to argv or logs.
//! - [`tools::ClientTools`]: `pg_dump`/`pg_restore`/`pg_dumpall`/`psql` of a version
//!   that fits the server.
//! - [`psql`]: SQL scripts through `psql` (fixtures; user-facing files go
//!   through [`child`]); [`classify`]: tool failures into [`PgError`];
//!   [`ident`]: quoting.
//! - [`catalog`]: the catalog questions (server version, sizes, row counts,
//!   [`catalog::DependencyInfo`] for partial restores), asked through the
//!   in-process client (`postgres` crate), not psql.
//! - [`session::Session`]: one held client connection (the backup's snapshot
//!   session, physical backup start/stop); [`tls`]: libpq's sslmode over
//!   rustls; [`pgpass`]: libpq's password file for the client.
//! - [`dump`]: `pg_dump -Fc -Z0` and `pg_dumpall --globals-only` commands, and the
//!   Supabase profile.
//! - [`toc::TocEntry`]: the archive's table of contents (one model), read by
//!   [`archive::ArchiveInspector`] as the archive streams, which also counts rows per table.
//! - [`selection`]: the entries a partial restore needs (a table's indexes,
//!   constraints, triggers, ...); [`restore_cmd`]: the `pg_restore` command and its outcome.
//! - [`cluster::ScratchCluster`]: throwaway clusters for tests and restore drills.
//! - [`platform`]: what a platform-profile (Supabase) dump presupposes, and
//!   preparing plain PostgreSQL for it.
//! - [`schema_diff`]: a schema as objects and the drift between two (`migrations check`).
//! - [`physical`]: data directory facts for physical backups (exclusions,
//!   relation files, page checksums, LSNs and WAL file names).
//! - [`compare`]: normalised schema dumps and table checksums to prove a restore.
//! - [`error::PgError`]: the error type of all of the above.

pub mod archive;
pub mod catalog;
pub mod child;
pub mod classify;
pub mod cluster;
pub mod compare;
pub mod conn;
pub mod dump;
pub mod error;
pub mod ident;
pub mod pgpass;
pub mod physical;
pub mod platform;
pub mod psql;
pub mod recovery;
pub mod restore_cmd;
pub mod schema_diff;
pub mod selection;
pub mod session;
pub mod tls;
pub mod toc;
pub mod tools;

pub use catalog::{DependencyInfo, TableStat, TargetCatalog};
pub use cluster::ScratchCluster;
pub use conn::PgTarget;
pub use dump::{DumpOptions, Profile};
pub use error::PgError;
pub use restore_cmd::RestoreOptions;
pub use selection::Selection;
pub use toc::TocEntry;
pub use tools::ClientTools;
