//! Command-line definitions (clap).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// lifeboat: back up and recover PostgreSQL, ClickHouse and configuration
/// into one encrypted, deduplicated repository.
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Config file (lifeboat.toml).
    #[arg(long, global = true, env = "LIFEBOAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Repository location (a directory).
    #[arg(long, short = 'r', global = true, env = "LIFEBOAT_REPOSITORY")]
    pub repo: Option<String>,
    /// File holding the repository passphrase.
    #[arg(long, global = true, env = "LIFEBOAT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Exported raw key file (opens without a passphrase).
    #[arg(long, global = true, env = "LIFEBOAT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Do not use the local cache of a remote repository's metadata.
    #[arg(long, global = true)]
    pub no_cache: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init,
    /// Back up a configured source, or paths given on the command line.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the contents of a snapshot.
    Ls(LsArgs),
    /// Restore a snapshot into a directory.
    Restore(RestoreArgs),
    /// Check the repository: structure, and with --read-data the data itself.
    Verify(VerifyArgs),
    /// Manage the keys (passphrases) that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Work with PostgreSQL dumps stored in the repository.
    #[command(subcommand)]
    Dump(DumpCommand),
    /// Remove the snapshots a retention policy does not keep (docs/RETENTION.md).
    Forget(ForgetArgs),
    /// Delete data no snapshot references, safely while backups run.
    Prune(PruneArgs),
    /// Copy snapshots to another repository (`[repositories.NAME]`), e.g. offsite.
    Copy(CopyArgs),
    /// Check a project's SQL migrations against its live database.
    #[command(subcommand)]
    Migrations(MigrationsCommand),
    /// Archive and fetch PostgreSQL WAL (archive_command / restore_command).
    #[command(subcommand)]
    Wal(WalCommand),
    /// Run the scheduled jobs that are due now, once (for cron or a systemd timer).
    RunDue(RunDueArgs),
    /// Run the scheduled jobs as they come due, until SIGTERM (SIGHUP reloads the config).
    Daemon(DaemonArgs),
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Seconds a running job may go on after SIGTERM before it is cancelled.
    #[arg(long, default_value_t = 300)]
    pub stop_grace: u64,
}

#[derive(Args, Debug)]
pub struct RunDueArgs {
    /// Only this source's jobs.
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum WalCommand {
    /// Archive one WAL file: `archive_command = 'lifeboat --config C wal push %p'`.
    /// Exits 0 only once the file is durable in the repository.
    Push(WalPushArgs),
    /// Fetch one archived WAL file: `restore_command = 'lifeboat --config C wal fetch %f %p'`.
    /// Exits 18 when the file is not archived; never leaves a partial file.
    Fetch(WalFetchArgs),
    /// List a cluster's archived WAL: per timeline, the ranges and gaps.
    List(WalClusterArgs),
    /// Check a cluster's archived WAL: no segment missing from each base
    /// backup's start to the newest, every object intact; the newest
    /// segment's age (RPO now). Exits 12 on a gap or a bad object.
    Verify(WalClusterArgs),
}

/// Which cluster's WAL (default: the data directory around the path, or
/// the working directory, where PostgreSQL runs archive and restore commands).
#[derive(Args, Debug, Clone)]
pub struct WalClusterArgs {
    /// The cluster's data directory (its global/pg_control names the cluster).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// The cluster's system identifier (as pg_controldata prints it).
    #[arg(long, value_name = "N", conflicts_with = "pgdata")]
    pub system_id: Option<u64>,
}

#[derive(Args, Debug)]
pub struct WalPushArgs {
    /// The WAL file (PostgreSQL's %p).
    pub path: PathBuf,
    #[command(flatten)]
    pub cluster: WalClusterArgs,
}

#[derive(Args, Debug)]
pub struct WalFetchArgs {
    /// The WAL file name (PostgreSQL's %f).
    pub name: String,
    /// Where to write it (PostgreSQL's %p).
    pub dest: PathBuf,
    #[command(flatten)]
    pub cluster: WalClusterArgs,
}

#[derive(Subcommand, Debug)]
pub enum MigrationsCommand {
    /// Apply the migrations to a scratch PostgreSQL and compare the schema with
    /// the source's live database; exits 19 on drift.
    Check(MigrationsCheckArgs),
}

#[derive(Args, Debug)]
pub struct MigrationsCheckArgs {
    /// The postgres source (from the config) whose live database is compared.
    pub source: String,
    /// Directory of *.sql migrations, applied in name order.
    #[arg(long, default_value = "supabase/migrations")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Target repository: a `[repositories.NAME]` table of the config.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Only snapshots of this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Snapshots to copy (id prefixes or `latest`); all when none given.
    pub snapshots: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// State the packs and bytes prune would free; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack packs with more than this percent of unreferenced bytes
    /// (default: `prune.repack_threshold` of the config, else 10; 100 never repacks).
    #[arg(long, value_name = "PERCENT")]
    pub repack_threshold: Option<f64>,
}

/// A retention policy given on the command line (replaces the config's).
#[derive(Args, Debug, Default, Clone)]
pub struct PolicyArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours (UTC) that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// ... of each of the N newest days (UTC) that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// ... of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// ... of each of the N newest months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// ... of each of the N newest years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this span before the newest (e.g. 30d, 36h).
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Only this source's snapshots.
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print the plan (each snapshot kept or removed, and why); delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then prune: delete the data no remaining snapshot references.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Subcommand, Debug)]
pub enum DumpCommand {
    /// Write a logical snapshot as a file stock tools accept (pg_restore or psql).
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// `custom` (pg_restore) or `plain` (psql).
    #[arg(long, default_value = "custom")]
    pub format: String,
    /// Output file (refuses to overwrite); standard output when absent.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// With `latest`: the latest of this source.
    #[arg(long)]
    pub source: Option<String>,
}

/// PostgreSQL selection flags shared by backup and restore.
#[derive(Args, Debug, Default, Clone)]
pub struct PgSelection {
    /// Only the schema (no data).
    #[arg(long)]
    pub schema_only: bool,
    /// Only the data (no schema).
    #[arg(long)]
    pub data_only: bool,
    /// Only this table (repeatable; `schema.table`, patterns as pg_dump).
    #[arg(long = "table", short = 't')]
    pub tables: Vec<String>,
    /// Only this schema (repeatable).
    #[arg(long = "schema", short = 'n')]
    pub schemas: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A source name from the config, or paths to back up.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Backup kind for database sources: logical (default) or physical (needs `pgdata`).
    #[arg(long)]
    pub kind: Option<String>,
    /// Snapshot time instead of now (RFC 3339, e.g. 2026-01-31T02:00:00Z).
    #[arg(long)]
    pub time: Option<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Exclude glob (repeatable; files).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Include glob (repeatable; files).
    #[arg(long = "include")]
    pub includes: Vec<String>,
    /// Also capture the environment, secrets redacted (files).
    #[arg(long)]
    pub env: bool,
    /// Store secrets in .env files and the environment capture as they are.
    #[arg(long)]
    pub no_redact: bool,
    /// Source name for an ad-hoc backup of paths.
    #[arg(long, default_value = "files")]
    pub source_name: String,
    #[command(flatten)]
    pub pg: PgSelection,
    /// Leave out this table (repeatable; PostgreSQL).
    #[arg(long = "exclude-table")]
    pub exclude_tables: Vec<String>,
    /// Leave out this schema (repeatable; PostgreSQL).
    #[arg(long = "exclude-schema")]
    pub exclude_schemas: Vec<String>,
    /// After a successful backup, apply the source's retention policy
    /// (as `forget` does); also `forget_after_backup = true` in the config.
    #[arg(long)]
    pub forget: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only this source's snapshots.
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Only below this path inside the snapshot.
    pub path: Option<String>,
    /// With `latest`: the latest of this source.
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Target: a directory, a PostgreSQL URL (`postgres://host/db`, or
    /// `env:NAME` to read the URL from the environment, keeping passwords off
    /// argv), or for a ClickHouse snapshot the server (`http://host:8123`).
    #[arg(long)]
    pub to: String,
    /// Restore only this path inside the snapshot (repeatable): a subtree or a file.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// With `latest`: the latest of this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Overwrite existing files in the target.
    #[arg(long)]
    pub force: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub pg: PgSelection,
    /// Drop restored objects before recreating them (PostgreSQL).
    #[arg(long)]
    pub clean: bool,
    /// Parallel data streams and index builds (0 = the number of cores, at
    /// most 4); 1 restores with one streaming pg_restore.
    #[arg(long, default_value_t = 0)]
    pub jobs: u32,
    /// Apply the captured roles (globals) first.
    #[arg(long)]
    pub roles: bool,
    /// With `latest`: when some snapshot cannot be read, use the newest
    /// readable one (with a warning) instead of failing.
    #[arg(long)]
    pub skip_damaged: bool,
    /// Physical snapshots: restore the tablespace at OLD into NEW
    /// (`OLD=NEW`, repeatable).
    #[arg(long = "tablespace-map", value_name = "OLD=NEW")]
    pub tablespace_map: Vec<String>,
    /// ClickHouse snapshots: only this database.
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
    /// ClickHouse snapshots: restore the one database (--database) or
    /// table (--table db.t) under this name (`NEW`, or `db.NEW` for a table).
    #[arg(long = "as", value_name = "NEW")]
    pub rename: Option<String>,
    /// ClickHouse snapshots: only this partition id of the one --table
    /// (repeatable); goes through a staging table and REPLACE PARTITION.
    #[arg(long = "partition", value_name = "ID")]
    pub partitions: Vec<String>,
    /// ClickHouse snapshots: replace the data of tables that already hold
    /// rows (partition by partition through REPLACE PARTITION).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub recovery: RecoveryArgs,
}

/// Point-in-time recovery of a physical snapshot.
#[derive(Args, Debug, Clone)]
pub struct RecoveryArgs {
    /// Recover to this time (with a UTC offset: `2026-12-03 12:00:00+00`).
    #[arg(long, value_name = "TIME")]
    pub target_time: Option<String>,
    /// Recover to this WAL location (`0/3000060`).
    #[arg(long, value_name = "LSN")]
    pub target_lsn: Option<String>,
    /// Recover up to and including this transaction.
    #[arg(long, value_name = "XID")]
    pub target_xid: Option<String>,
    /// Recover to this restore point (`pg_create_restore_point`).
    #[arg(long, value_name = "NAME")]
    pub target_name: Option<String>,
    /// `immediate`: stop as soon as the base backup is consistent.
    #[arg(long, value_name = "immediate", value_parser = ["immediate"])]
    pub target: Option<String>,
    /// The timeline to recover along: `latest`, `current` or a number.
    #[arg(long, value_name = "TL")]
    pub target_timeline: Option<String>,
    /// What the server does at the target: promote, pause (default) or shutdown.
    #[arg(long, value_name = "ACTION")]
    pub target_action: Option<String>,
    /// Start the restored cluster and wait until recovery has ended.
    #[arg(long)]
    pub start: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Also read and decrypt data: all of it, or a percentage (e.g. --read-data=10%).
    #[arg(long, num_args = 0..=1, default_missing_value = "100%", value_name = "PERCENT")]
    pub read_data: Option<String>,
    /// Restore a PostgreSQL logical snapshot into a scratch cluster (a
    /// ClickHouse snapshot into scratch databases) and check it.
    #[arg(long)]
    pub restore_test: bool,
    /// Snapshot for --restore-test (id prefix or `latest`, the default).
    pub snapshot: Option<String>,
    /// With --restore-test: the latest of this source.
    #[arg(long)]
    pub source: Option<String>,
    /// With --restore-test of a ClickHouse snapshot: the server to test on
    /// (`http://host:8123`; default: the source's own).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a passphrase (read from --new-password-file).
    Add(KeyAddArgs),
    /// List key files.
    List,
    /// Remove a key file by id (prefix).
    Remove {
        /// Key id or prefix.
        id: String,
    },
    /// Change the passphrase of the key in use.
    Passwd(KeyAddArgs),
    /// Write a raw key file that opens the repository without a passphrase.
    Export {
        /// Output file (created 0600; refuses to overwrite).
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    /// File holding the new passphrase.
    #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE")]
    pub new_password_file: PathBuf,
    /// Label for the key.
    #[arg(long, default_value = "")]
    pub label: String,
}
