//! What lifeboat backs up and restores into, without knowing about the repository.
//!
//! Each source reads from, and restores into, one real system:
//! - [`files`]: directory trees (walk with include/exclude globs, apply metadata on restore);
//! - [`command`]: a program's standard output (platform config CLIs), redacted;
//! - [`env`]: a capture of environment variables with secrets redacted;
//! - [`clickhouse`]: ClickHouse over HTTP (streaming client, Native validation, test servers);
//! - [`postgres`]: PostgreSQL via its own client tools (`pg_dump`, `pg_restore`, `psql`);
//! - [`process`]: every child process starts from an empty environment plus an allowlist.
//!
//! The engine crate connects sources to the repository; sources only speak
//! the language of the system they serve.

pub mod clickhouse;
pub mod command;
pub mod env;
pub mod files;
pub mod postgres;
pub mod process;
