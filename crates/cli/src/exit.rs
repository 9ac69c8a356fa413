//! Exit codes (stable; docs/CLI.md) and error reporting.

use lifeboat_engine::EngineError;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// Any error without a more specific code.
pub const ERROR: u8 = 1;
/// The backup finished but is incomplete: skipped entries or files that changed while read (warnings printed).
pub const INCOMPLETE: u8 = 3;
/// No repository at the location.
pub const NO_REPOSITORY: u8 = 10;
/// Wrong password or key.
pub const WRONG_KEY: u8 = 11;
/// Repository data is damaged (also: verify found problems).
pub const DAMAGED: u8 = 12;
/// Repository format version not supported.
pub const UNSUPPORTED_VERSION: u8 = 13;
/// The restore target is not empty and --force was not given.
pub const TARGET_NOT_EMPTY: u8 = 14;
/// Bad config file or option.
pub const CONFIG: u8 = 15;
/// A source system (PostgreSQL, ...) failed or is unreachable.
pub const SOURCE: u8 = 16;
/// No space left on a device.
pub const NO_SPACE: u8 = 17;
/// Not found (snapshot, path, key).
pub const NOT_FOUND: u8 = 18;
/// `migrations check` found drift between the migrations and the database.
pub const DRIFT: u8 = 19;
/// `wal push`: a different WAL file is already archived under that name.
pub const CONFLICT: u8 = 20;
/// Another prune is running (only one runs at a time; retry later).
pub const BUSY: u8 = 21;
/// `run-due`: a scheduled job failed (its error is in the job history).
pub const JOB_FAILED: u8 = 22;
/// Point-in-time recovery ended before reaching its target.
pub const RECOVERY_INCOMPLETE: u8 = 23;

/// The exit code for an error code.
pub fn code_for(code: &str) -> u8 {
    match code {
        "not_a_repository" => NO_REPOSITORY,
        "wrong_key" => WRONG_KEY,
        "corrupt" | "storage_not_found" => DAMAGED,
        "unsupported_version" => UNSUPPORTED_VERSION,
        "target_not_empty" => TARGET_NOT_EMPTY,
        "config" | "invalid" | "already_initialized" => CONFIG,
        "source" | "source_io" => SOURCE,
        "no_space" => NO_SPACE,
        "not_found" => NOT_FOUND,
        "conflict" => CONFLICT,
        "busy" => BUSY,
        "recovery_incomplete" => RECOVERY_INCOMPLETE,
        _ => ERROR,
    }
}

/// An output file that must not exist yet does (`create_new`): nothing was written.
fn already_exists(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::AlreadyExists)
}

/// Print an error once (chain included) and pick the exit code.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(OK);
        }
    }
    let engine = err.downcast_ref::<EngineError>();
    let code = engine
        .map(|e| e.code())
        .or_else(|| already_exists(err).then_some("target_not_empty"))
        .unwrap_or("error");
    let detail = engine.and_then(EngineError::detail);
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message.push_str(": ");
            message.push_str(&c);
        }
    }
    if json {
        crate::outln!(
            "{}",
            serde_json::json!({"error": {"code": code, "detail": detail, "message": message}})
        );
    } else {
        eprintln!("lifeboat: error: {message}");
    }
    ExitCode::from(code_for(code))
}
