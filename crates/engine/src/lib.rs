//! Use-cases shared by the CLI and (later) the daemon.
//!
//! Entry points (a request struct in, a serialisable report out, no
//! command-line types), all taking a [`Ctx`]:
//! - [`backup::run`]: back up a configured source or ad-hoc paths;
//! - [`restore::plan`] then [`restore::execute`]: every snapshot kind;
//! - [`verify::verify`], [`verify::restore_test`]: checks;
//! - [`keys`]: init and key management;
//! - [`listing::snapshots`], [`listing::ls`]: listings;
//! - [`dump::export`]: a logical snapshot as a stock dump file;
//! - [`wal::push`], [`wal::fetch`], [`wal::list`]: WAL archiving;
//! - [`jobs::run_due`]: the scheduled jobs that are due, recorded in the job history.
//!
//! Building blocks: [`open`] (find, create and unlock the repository),
//! [`config`] (`lifeboat.toml`, `env:`/`file:` secrets), [`backup_files`]
//! and [`restore_files`] (the files source), [`backup_command`] (a
//! program's output stored as a file, restored as files), [`clickhouse`]
//! (ClickHouse backup, restore, restore tests), [`postgres`] (logical backup,
//! restore, export, restore tests), [`meta`] (each kind's snapshot `meta`),
//! [`store`] (shared by every backup kind), [`schedule`] (cron schedules of
//! sources), [`progress`] (counters a front
//! end renders).
//!
//! Operations that change things are split into a plan and its execution
//! (see [`restore::plan`]), so `--dry-run` can print the plan.

pub mod backup;
pub mod backup_command;
pub mod backup_files;
pub mod clickhouse;
pub mod config;
pub mod copy;
pub mod ctx;
pub mod dump;
pub mod error;
pub mod forget;
pub mod jobs;
pub mod keys;
pub mod listing;
pub mod meta;
pub mod migrations;
pub mod open;
pub mod postgres;
pub mod progress;
pub mod prune;
pub mod prune_lock;
pub mod repack;
pub mod restore;
pub mod restore_files;
pub mod retention;
pub mod schedule;
pub mod store;
pub mod verify;
pub mod wal;
pub mod wal_verify;

pub use ctx::{Ctx, RepoOptions};
pub use error::{EngineError, Result};

/// Value types of the repository format that reports carry.
pub mod types {
    pub use lifeboat_repo::{
        CheckReport, Id, NodeKind, RestoreTestReport, Snapshot, SnapshotInfo, SnapshotKind,
        SnapshotStats, VerificationRecord,
    };
}
