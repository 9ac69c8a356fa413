//! The per-source job lock: an exclusive `flock` on a file on this host,
//! so two `run-due` processes (or a daemon and a `run-due`) never run two
//! jobs of one source at once. The kernel releases it when its process
//! dies, even by SIGKILL, so nothing is left to unlock by hand.
//!
//! The file is `<dir>/<repository id>.<source>.lock`, `<dir>` being
//! `LIFEBOAT_LOCK_DIR`, else `/run/lifeboat` for root, else
//! `$XDG_RUNTIME_DIR/lifeboat`, else `<tmp>/lifeboat-<uid>` (created 0700).
//! It is a host lock: hosts sharing one repository each run their own
//! sources (docs/CLI.md "run-due").

use crate::error::{EngineError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the lock directory.
pub const LOCK_DIR_ENV: &str = "LIFEBOAT_LOCK_DIR";

/// A held source lock; released on drop.
#[derive(Debug)]
pub struct SourceLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// The directory lock files live in.
pub fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(LOCK_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        return PathBuf::from("/run/lifeboat");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("lifeboat"),
        None => std::env::temp_dir().join(format!("lifeboat-{uid}")),
    }
}

/// A source name as a file-name part: itself when plain, else hex.
fn file_part(source: &str) -> String {
    let plain = !source.is_empty()
        && !source.starts_with('.')
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if plain {
        source.to_string()
    } else {
        source.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

/// Take the lock of `source` in repository `repo_id` without waiting;
/// `None` when another process holds it.
pub fn try_lock(dir: &Path, repo_id: &str, source: &str) -> Result<Option<SourceLock>> {
    let io = |what: &str, p: &Path, e| EngineError::Io {
        context: format!(
            "{what} {} (the job lock directory; set {LOCK_DIR_ENV} to another)",
            p.display()
        ),
        source: e,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("cannot create", dir, e))?;
    let path = dir.join(format!("{}.{}.lock", file_part(repo_id), file_part(source)));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("cannot open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SourceLock { _file: file, path })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io("cannot lock", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("locks");
        let held = try_lock(&d, "r1", "main").unwrap().expect("free");
        assert!(try_lock(&d, "r1", "main").unwrap().is_none(), "held");
        assert!(try_lock(&d, "r1", "other").unwrap().is_some(), "per source");
        assert!(
            try_lock(&d, "r2", "main").unwrap().is_some(),
            "per repository"
        );
        drop(held);
        assert!(try_lock(&d, "r1", "main").unwrap().is_some(), "released");
        assert_eq!(file_part("a/b"), "612f62");
    }
}
