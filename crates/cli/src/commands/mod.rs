//! One module per command; each turns its flags into an engine request,
//! calls the engine and prints the report.

mod backup;
mod copy;
mod daemon;
mod dump;
mod forget;
mod key;
mod migrations;
mod prune;
mod restore;
mod run_due;
mod snapshots;
mod verify;
mod wal;

use crate::args::{Cli, Command, Global, PgSelection};
use anyhow::Result;
use lifeboat_engine::{Ctx, RepoOptions};
use std::process::ExitCode;

/// What every command needs: the global flags and the engine's context.
pub struct Context {
    pub global: Global,
    pub engine: Ctx,
}

/// The repository options the global flags name (also the daemon's).
pub fn repo_options(global: &Global) -> RepoOptions {
    RepoOptions {
        config: global.config.clone(),
        repo: global.repo.clone(),
        password_file: global.password_file.clone(),
        key_file: global.key_file.clone(),
        no_cache: global.no_cache,
    }
}

impl Context {
    fn new(global: Global) -> Result<Self> {
        let engine = Ctx::new(repo_options(&global))?;
        Ok(Context { global, engine })
    }

    /// Whether to draw progress (never with `--quiet` or `--json`).
    fn progress_wanted(&self) -> bool {
        !(self.global.quiet || self.global.json)
    }
}

impl From<PgSelection> for lifeboat_engine::backup::PgSelection {
    fn from(p: PgSelection) -> Self {
        lifeboat_engine::backup::PgSelection {
            schema_only: p.schema_only,
            data_only: p.data_only,
            tables: p.tables,
            schemas: p.schemas,
        }
    }
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Context::new(cli.global)?;
    match cli.command {
        Command::Init => key::init(&ctx).await,
        Command::Backup(a) => backup::run(&ctx, a).await,
        Command::Snapshots(a) => snapshots::list(&ctx, a).await,
        Command::Ls(a) => snapshots::ls(&ctx, a).await,
        Command::Restore(a) => restore::run(&ctx, a).await,
        Command::Verify(a) => verify::run(&ctx, a).await,
        Command::Key(k) => key::run(&ctx, k).await,
        Command::Dump(d) => dump::run(&ctx, d).await,
        Command::Migrations(m) => migrations::run(&ctx, m).await,
        Command::Forget(a) => forget::run(&ctx, a).await,
        Command::Prune(a) => prune::run(&ctx, a).await,
        Command::Copy(a) => copy::run(&ctx, a).await,
        Command::Wal(w) => wal::run(&ctx, w).await,
        Command::RunDue(a) => run_due::run(&ctx, a).await,
        Command::Daemon(a) => daemon::run(&ctx, a).await,
    }
}
