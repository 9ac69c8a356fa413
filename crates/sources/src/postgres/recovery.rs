//! Starting a restored data directory in recovery and watching until
//! recovery has really ended (`restore --start`).
//!
//! The server runs as the data directory's owner, listens on no TCP port
//! (`listen_addresses = ''`), only on a Unix socket in a private (0700)
//! directory of its own, with its log there too, and starts from an empty
//! environment. What happened is read from that log, not from a
//! connection (lifeboat does not know the restored cluster's passwords):
//!
//! - promoted: `archive recovery complete`, then `database system is ready
//!   to accept connections` (the startup process has exited, so
//!   `pg_is_in_recovery()` is false);
//! - paused: `pausing at the end of recovery` and read-only connections
//!   accepted;
//! - shut down: `shutdown at recovery target` and the postmaster gone;
//! - the target not reached: `recovery ended before configured recovery
//!   target was reached` (the WAL ran out first) or `requested recovery stop
//!   point is before consistent recovery point`, the postmaster gone.

use super::error::{PgError, Result};
use super::tools::ClientTools;
use crate::process;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How recovery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    /// Promoted: the cluster is out of recovery and accepts writes.
    Promoted,
    /// Paused at the target; read-only connections accepted
    /// (`pg_wal_replay_resume()` promotes it).
    Paused,
    /// Shut down at the target.
    ShutDown,
    /// The server stopped before reaching the target (missing WAL, or a
    /// target before the backup's consistent point).
    EndedBeforeTarget,
}

/// A restored cluster started by [`start`]; it keeps running after
/// lifeboat exits (promoted or paused).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryOutcome {
    /// How it ended.
    pub state: RecoveryState,
    /// The server's "recovery stopping ..." line (where it stopped).
    pub stopped: Option<String>,
    /// LSN where redo ended (`redo done at ...`).
    pub end_lsn: Option<String>,
    /// Commit time of the last replayed transaction.
    pub end_time: Option<String>,
    /// The timeline a promotion selected.
    pub new_timeline: Option<u32>,
    /// The private socket directory (connect with `host=` this).
    pub socket_dir: PathBuf,
    /// The server log.
    pub log: PathBuf,
    /// The postmaster's pid while it runs.
    pub pid: Option<u32>,
    /// The log's last lines, when recovery did not reach its target.
    pub log_tail: Option<String>,
}

/// Start `data` (a restored data directory with `recovery.signal`) with
/// the server binaries of `tools` (the cluster's major version), as the
/// directory's owner, and wait until recovery has ended one way or another.
pub fn start_and_wait(tools: &ClientTools, data: &Path) -> Result<RecoveryOutcome> {
    let owner = std::fs::metadata(data)
        .map_err(|e| PgError::io(format!("reading {}", data.display()), e))?;
    let ids = (owner.uid(), owner.gid());
    let socket_dir = private_dir(ids)?;
    let log = socket_dir.join("server.log");
    let opts = format!(
        "-p 5432 -k {} -c listen_addresses='' -c unix_socket_permissions=0700 -c logging_collector=off -c hot_standby=on",
        shell_quote(&socket_dir.to_string_lossy())
    );
    let mut cmd = process::server_command(tools.program("pg_ctl"));
    cmd.current_dir(&socket_dir)
        .env("HOME", &socket_dir)
        .args(["-W", "-D"])
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["start", "-o", &opts])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if running_as_root() && ids.0 != 0 {
        cmd.uid(ids.0).gid(ids.1);
    }
    let status = cmd.status().map_err(|source| PgError::Spawn {
        program: "pg_ctl".into(),
        source,
    })?;
    if !status.success() {
        return Err(PgError::Cluster {
            detail: format!(
                "pg_ctl start of the restored cluster in {} failed ({status}); see {}",
                data.display(),
                log.display()
            ),
        });
    }
    Ok(watch(data, socket_dir, log))
}

/// Poll the log and the postmaster until recovery has ended.
fn watch(data: &Path, socket_dir: PathBuf, log: PathBuf) -> RecoveryOutcome {
    let mut pid = None;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if pid.is_none() {
            pid = postmaster_pid(data);
        }
        let alive = pid.is_some_and(is_alive);
        let gone = !alive && (pid.is_some() || text.contains("database system is shut down"));
        if let Some(state) = ended(&text, gone) {
            return outcome(state, &text, socket_dir, log, pid.filter(|_| alive));
        }
        if gone {
            return outcome(
                RecoveryState::EndedBeforeTarget,
                &text,
                socket_dir,
                log,
                None,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The end state the log shows, if any; `gone` when the postmaster exited.
fn ended(log: &str, gone: bool) -> Option<RecoveryState> {
    const NOT_REACHED: [&str; 2] = [
        "recovery ended before configured recovery target was reached",
        "requested recovery stop point is before consistent recovery point",
    ];
    if NOT_REACHED.iter().any(|m| log.contains(m)) {
        return gone.then_some(RecoveryState::EndedBeforeTarget);
    }
    if let Some(at) = log.find("archive recovery complete") {
        if log[at..].contains("database system is ready to accept connections") {
            return Some(RecoveryState::Promoted);
        }
    }
    if log.contains("pausing at the end of recovery")
        && log.contains("database system is ready to accept read-only connections")
    {
        return Some(RecoveryState::Paused);
    }
    if log.contains("shutdown at recovery target") && gone {
        return Some(RecoveryState::ShutDown);
    }
    None
}

fn outcome(
    state: RecoveryState,
    log_text: &str,
    socket_dir: PathBuf,
    log: PathBuf,
    pid: Option<u32>,
) -> RecoveryOutcome {
    let after = |needle: &str| {
        log_text.lines().rev().find_map(|l| {
            l.find(needle)
                .map(|i| l[i + needle.len()..].trim().to_string())
        })
    };
    let word = |s: String| s.split_whitespace().next().unwrap_or_default().to_string();
    let tail: Vec<&str> = log_text.lines().collect();
    RecoveryOutcome {
        state,
        stopped: log_text.lines().rev().find_map(|l| {
            l.find("recovery stopping")
                .map(|i| l[i..].trim().to_string())
        }),
        end_lsn: after("redo done at ").map(word),
        end_time: after("last completed transaction was at log time "),
        new_timeline: after("selected new timeline ID: ").and_then(|s| word(s).parse().ok()),
        socket_dir,
        log,
        pid,
        log_tail: (state == RecoveryState::EndedBeforeTarget)
            .then(|| tail[tail.len().saturating_sub(12)..].join("\n")),
    }
}

/// A new 0700 directory owned by `ids` (socket and log of the server).
fn private_dir(ids: (u32, u32)) -> Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-recovery-")
        .tempdir()
        .map_err(|e| PgError::io("creating the restored server's socket directory", e))?
        .keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| PgError::io(format!("setting the mode of {}", dir.display()), e))?;
    if running_as_root() {
        std::os::unix::fs::chown(&dir, Some(ids.0), Some(ids.1))
            .map_err(|e| PgError::io(format!("handing {} to its owner", dir.display()), e))?;
    }
    Ok(dir)
}

/// The pid in `postmaster.pid`, if the file is there.
pub fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` runs (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    !stat.is_empty() && !matches!(state, Some('Z') | Some('X'))
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_states_from_the_log() {
        let promoted = "LOG:  recovery stopping before commit of transaction 7, time 2026-12-03 12:00:00+00\nLOG:  redo done at 0/3000148 system usage: x\nLOG:  last completed transaction was at log time 2026-12-03 11:59:59.5+00\nLOG:  selected new timeline ID: 2\nLOG:  archive recovery complete\nLOG:  database system is ready to accept connections\n";
        assert_eq!(ended(promoted, false), Some(RecoveryState::Promoted));
        let o = outcome(
            RecoveryState::Promoted,
            promoted,
            PathBuf::new(),
            PathBuf::new(),
            None,
        );
        assert_eq!(o.end_lsn.as_deref(), Some("0/3000148"));
        assert_eq!(o.new_timeline, Some(2));
        assert_eq!(o.end_time.as_deref(), Some("2026-12-03 11:59:59.5+00"));
        let short = "FATAL:  recovery ended before configured recovery target was reached\n";
        assert_eq!(ended(short, false), None);
        assert_eq!(ended(short, true), Some(RecoveryState::EndedBeforeTarget));
        assert_eq!(ended("LOG:  archive recovery complete\n", false), None);
    }
}
