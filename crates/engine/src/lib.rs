//! Use-cases shared by the CLI and (later) the daemon.
//!
//! - [`open`]: find, create and unlock the repository;
//! - [`config`]: `lifeboat.toml`, with `env:`/`file:` secret references;
//! - [`backup_files`], [`restore_files`]: the files source end to end;
//! - [`backup_command`]: a program's output stored as a file (restored as files);
//! - [`postgres`]: PostgreSQL logical backup, restore, export and restore tests;
//! - [`verify`]: repository checks;
//! - [`store`]: building blocks shared by every backup kind;
//! - [`progress`]: counters the CLI turns into a progress line.
//!
//! Operations that change things are split into a plan and its execution
//! (see [`restore_files::plan`]), so `--dry-run` can print the plan.

pub mod backup_command;
pub mod backup_files;
pub mod config;
pub mod error;
pub mod open;
pub mod postgres;
pub mod progress;
pub mod restore_files;
pub mod store;
pub mod verify;

pub use error::{EngineError, Result};
