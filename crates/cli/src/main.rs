//! The `lifeboat` binary: parses the command line, merges config and flags,
//! calls the engine, and prints tables or JSON.
//!
//! Exit codes are stable and documented in docs/CLI.md (see [`exit`]).

mod args;
mod commands;
mod exit;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let json = cli.global.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => exit::report(&err, json),
    }
}
