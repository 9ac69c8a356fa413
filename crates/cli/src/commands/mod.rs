//! One module per command; each merges config and flags, calls the engine and prints.

mod backup;
mod dump;
mod key;
mod restore;
mod snapshots;
mod verify;

use crate::args::{Cli, Command, Global};
use anyhow::Result;
use lifeboat_engine::config::Config;
use lifeboat_engine::open::RepoSpec;
use std::process::ExitCode;

/// What every command needs: the config (if any) and where the repository is.
pub struct Context {
    pub global: Global,
    pub config: Option<Config>,
    pub repo: RepoSpec,
}

impl Context {
    fn new(global: Global) -> Result<Self> {
        let config = match &global.config {
            Some(p) => Some(Config::load(p)?),
            None => None,
        };
        let mut repo = RepoSpec {
            url: global.repo.clone(),
            password_file: global.password_file.clone(),
            key_file: global.key_file.clone(),
            password_ref: None,
        };
        if repo.password_file.is_none()
            && repo.key_file.is_none()
            && std::env::var_os("LIFEBOAT_PASSWORD").is_some()
        {
            // Read from this process's environment only; never on argv.
            repo.password_ref = Some("env:LIFEBOAT_PASSWORD".into());
        }
        if let Some(cfg) = &config {
            repo = repo.with_config(&cfg.repository, cfg);
        }
        Ok(Context {
            global,
            config,
            repo,
        })
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
    }
}
