//! Point-in-time recovery of a physical snapshot: the target
//! ([`RecoveryRequest`]), the base backup it needs ([`choose_base_backup`]),
//! the recovery settings written into the restored data directory
//! ([`write_recovery_config`]) and, with `--start`, starting it and waiting
//! until recovery has really ended ([`start_and_wait`]).
//!
//! The base backup: the newest physical snapshot of the cluster that is
//! consistent before the target, i.e. whose `stop_time` is before a time
//! target or whose `stop_lsn` is at or before an LSN target; `immediate`
//! and recovery to the end of the archived WAL take the newest. An xid or a
//! restore point name cannot be placed on the WAL's time line without
//! reading it, so those replay from the oldest base backup of the cluster
//! (name a snapshot instead of `latest` to start from a newer one).
//!
//! The restored cluster gets `recovery.signal` and, appended to
//! `postgresql.auto.conf` after `archive_mode = 'off'`, a `restore_command`
//! running this binary's `wal fetch` against the same repository (config
//! and secret by file path, never the secret itself) and the target
//! settings.

use super::physical::PhysicalMeta;
use crate::error::{EngineError, Result};
use lifeboat_repo::{Id, Repository, Snapshot};
use lifeboat_sources::postgres::physical::parse_lsn;
use lifeboat_sources::postgres::recovery::{self, RecoveryOutcome, RecoveryState};
use lifeboat_sources::postgres::ClientTools;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to recover to (all unset: no recovery, only consistency).
#[derive(Debug, Clone, Default)]
pub struct RecoveryRequest {
    /// `recovery_target_time` (with a UTC offset).
    pub time: Option<String>,
    /// `recovery_target_lsn`.
    pub lsn: Option<String>,
    /// `recovery_target_xid`.
    pub xid: Option<String>,
    /// `recovery_target_name` (a `pg_create_restore_point` name).
    pub name: Option<String>,
    /// `recovery_target = 'immediate'`: stop at consistency.
    pub immediate: bool,
    /// `recovery_target_timeline`: `latest`, `current` or a number.
    pub timeline: Option<String>,
    /// `recovery_target_action`: `promote`, `pause` (PostgreSQL's default) or `shutdown`.
    pub action: Option<String>,
    /// Start the restored cluster and wait until recovery has ended.
    pub start: bool,
    /// The program and global options `restore_command` runs `wal fetch`
    /// with (absolute paths; no secrets).
    pub fetch_command: Vec<String>,
}

/// Where a target lies, for choosing the base backup.
#[derive(Debug, Clone, PartialEq)]
enum Order {
    Time(jiff::Timestamp),
    Lsn(u64),
    Unplaced,
    Newest,
}

impl RecoveryRequest {
    /// Whether any recovery was asked for.
    pub fn wanted(&self) -> bool {
        self.time.is_some()
            || self.lsn.is_some()
            || self.xid.is_some()
            || self.name.is_some()
            || self.immediate
            || self.timeline.is_some()
            || self.action.is_some()
            || self.start
    }

    fn has_target(&self) -> bool {
        self.targets() > 0
    }

    fn targets(&self) -> usize {
        [
            self.time.is_some(),
            self.lsn.is_some(),
            self.xid.is_some(),
            self.name.is_some(),
            self.immediate,
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }

    /// Refuse contradictory or malformed options (exit 15).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Config(m));
        if self.targets() > 1 {
            return bad("give one recovery target: --target-time, --target-lsn, --target-xid, --target-name or --target immediate".into());
        }
        if let Some(a) = &self.action {
            if !["promote", "pause", "shutdown"].contains(&a.as_str()) {
                return bad(format!(
                    "--target-action {a:?}: expected promote, pause or shutdown"
                ));
            }
            if !self.has_target() {
                return bad("--target-action needs a recovery target (--target-time, --target-lsn, --target-xid, --target-name or --target immediate); without one recovery replays all archived WAL and promotes".into());
            }
        }
        if let Some(l) = &self.lsn {
            if parse_lsn(l).is_none() {
                return bad(format!(
                    "--target-lsn {l:?}: expected an LSN such as 0/3000060"
                ));
            }
        }
        if let Some(x) = &self.xid {
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!(
                    "--target-xid {x:?}: expected a transaction id (digits)"
                ));
            }
        }
        if let Some(t) = &self.timeline {
            let ok = t == "latest" || t == "current" || t.parse::<u32>().is_ok_and(|n| n > 0);
            if !ok {
                return bad(format!(
                    "--target-timeline {t:?}: expected latest, current or a timeline number"
                ));
            }
        }
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 63 {
                return bad(format!(
                    "--target-name {n:?}: a restore point name has 1 to 63 bytes"
                ));
            }
        }
        self.order().map(|_| ())
    }

    fn order(&self) -> Result<Order> {
        if let Some(t) = &self.time {
            return parse_time(t).map(Order::Time);
        }
        if let Some(l) = &self.lsn {
            return Ok(Order::Lsn(parse_lsn(l).unwrap_or(0)));
        }
        if self.xid.is_some() || self.name.is_some() {
            return Ok(Order::Unplaced);
        }
        Ok(Order::Newest)
    }

    /// The target, as the restore report names it.
    pub fn describe(&self) -> String {
        let tl = self
            .timeline
            .as_ref()
            .map(|t| format!(" on timeline {t}"))
            .unwrap_or_default();
        let what = if let Some(t) = &self.time {
            format!("time {t}")
        } else if let Some(l) = &self.lsn {
            format!("LSN {l}")
        } else if let Some(x) = &self.xid {
            format!("transaction {x}")
        } else if let Some(n) = &self.name {
            format!("restore point {n:?}")
        } else if self.immediate {
            "consistency (immediate)".into()
        } else {
            "the end of the archived WAL".into()
        };
        format!("{what}{tl}")
    }

    /// The lines appended to `postgresql.auto.conf`.
    pub fn settings(&self, system_id: &str) -> Result<Vec<String>> {
        if self.fetch_command.is_empty() {
            return Err(EngineError::Config(
                "point-in-time recovery needs the command that fetches WAL (internal: no fetch command given)".into(),
            ));
        }
        let mut cmd: Vec<String> = self.fetch_command.iter().map(|a| shell_quote(a)).collect();
        cmd.extend(["wal", "fetch", "--system-id", system_id, "%f", "%p"].map(String::from));
        let mut out = vec![setting("restore_command", &cmd.join(" "))];
        let target = [
            ("recovery_target_time", &self.time),
            ("recovery_target_lsn", &self.lsn),
            ("recovery_target_xid", &self.xid),
            ("recovery_target_name", &self.name),
        ];
        for (k, v) in target {
            if let Some(v) = v {
                out.push(setting(k, v));
            }
        }
        if self.immediate {
            out.push(setting("recovery_target", "immediate"));
        }
        if let Some(t) = &self.timeline {
            out.push(setting("recovery_target_timeline", t));
        }
        if self.has_target() {
            out.push(setting(
                "recovery_target_action",
                self.action.as_deref().unwrap_or("pause"),
            ));
        }
        Ok(out)
    }
}

/// Parse a target time: RFC 3339 or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.f]+HH[:MM]`,
/// always with a UTC offset (the restored server would read one without it
/// in its own time zone).
fn parse_time(t: &str) -> Result<jiff::Timestamp> {
    let normal = normalise_offset(t.trim());
    normal.parse::<jiff::Timestamp>().map_err(|e| {
        EngineError::Config(format!(
            "--target-time {t:?}: expected a time with a UTC offset, e.g. 2026-12-03 12:00:00+00 or 2026-12-03T12:00:00Z ({e})"
        ))
    })
}

/// `+00` -> `+00:00` (PostgreSQL prints offsets in hours only).
fn normalise_offset(t: &str) -> String {
    let b = t.as_bytes();
    let n = b.len();
    if n > 3 && (b[n - 3] == b'+' || b[n - 3] == b'-') && b[n - 2..].iter().all(u8::is_ascii_digit)
    {
        return format!("{t}:00");
    }
    t.to_string()
}

fn setting(name: &str, value: &str) -> String {
    format!("{name} = '{}'", value.replace('\'', "''"))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Pick the base backup for the target: `given` (a snapshot the user
/// named) is checked against the target; with `latest`, the newest
/// physical snapshot of `latest`'s source and cluster that precedes it.
pub async fn choose_base_backup(
    repo: &Repository,
    latest: (Id, Snapshot),
    named: bool,
    req: &RecoveryRequest,
) -> Result<(Id, Snapshot)> {
    let order = req.order()?;
    let meta = PhysicalMeta::of(&latest.1)?;
    if named {
        return match precedes(&meta, &order) {
            true => Ok(latest),
            false => Err(before_backup(req, &[(latest.0, meta)])),
        };
    }
    let mut candidates = Vec::new();
    for (id, info) in repo.snapshots().await? {
        if info.kind != latest.1.kind || info.source != latest.1.source {
            continue;
        }
        let snap = repo.load_snapshot(&id).await?;
        let m = PhysicalMeta::of(&snap)?;
        if m.system_identifier == meta.system_identifier {
            candidates.push((id, snap, m));
        }
    }
    candidates.sort_by(|a, b| a.2.stop_time.cmp(&b.2.stop_time));
    let pick = match order {
        Order::Unplaced => candidates.first().map(|c| (c.0, c.1.clone())),
        _ => candidates
            .iter()
            .rev()
            .find(|c| precedes(&c.2, &order))
            .map(|c| (c.0, c.1.clone())),
    };
    pick.ok_or_else(|| {
        let all: Vec<(Id, PhysicalMeta)> = candidates.into_iter().map(|c| (c.0, c.2)).collect();
        before_backup(req, &all)
    })
}

/// Whether a base backup is consistent before the target.
fn precedes(meta: &PhysicalMeta, order: &Order) -> bool {
    match order {
        Order::Time(t) => meta
            .stop_time
            .parse::<jiff::Timestamp>()
            .is_ok_and(|stop| stop < *t),
        Order::Lsn(l) => parse_lsn(&meta.stop_lsn).is_some_and(|stop| stop <= *l),
        Order::Unplaced | Order::Newest => true,
    }
}

fn before_backup(req: &RecoveryRequest, backups: &[(Id, PhysicalMeta)]) -> EngineError {
    let oldest = backups
        .iter()
        .min_by(|a, b| a.1.stop_time.cmp(&b.1.stop_time))
        .map(|(id, m)| {
            format!(
                "{} {} (consistent at {} / LSN {})",
                if backups.len() == 1 {
                    "snapshot"
                } else {
                    "the oldest is"
                },
                id.short(),
                m.stop_time,
                m.stop_lsn
            )
        })
        .unwrap_or_else(|| "there is none".into());
    EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
        "no physical base backup is consistent before the recovery target {}: {oldest}; pick a later target, or a base backup taken before it; nothing was written",
        req.describe()
    )))
}

/// Write `recovery.signal` and append the recovery settings to
/// `postgresql.auto.conf` (both owned by the data directory's owner).
pub fn write_recovery_config(to: &Path, settings: &[String], meta: &PhysicalMeta) -> Result<()> {
    use std::io::Write;
    let conf = to.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&conf)
        .map_err(EngineError::io(format!("opening {}", conf.display())))?;
    let mut text = String::from("# lifeboat point-in-time recovery\n");
    for s in settings {
        text.push_str(s);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(EngineError::io(format!("writing {}", conf.display())))?;
    let signal = to.join("recovery.signal");
    std::fs::write(&signal, b"")
        .map_err(EngineError::io(format!("writing {}", signal.display())))?;
    for p in [&conf, &signal] {
        if lifeboat_sources::files::can_chown() {
            std::os::unix::fs::chown(p, Some(meta.pgdata_uid), Some(meta.pgdata_gid)).map_err(
                EngineError::io(format!("handing {} to its owner", p.display())),
            )?;
        }
    }
    Ok(())
}

/// What a point-in-time restore set up, and with `--start` how recovery ended.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    /// The target, in words.
    pub target: String,
    /// Lines appended to `postgresql.auto.conf`.
    pub settings: Vec<String>,
    /// With `--start`: how recovery ended.
    pub outcome: Option<RecoveryOutcome>,
}

/// Start the restored cluster and wait for the end of recovery; the target
/// not reached is [`EngineError::Recovery`] (exit 23), the data directory
/// left as it is.
pub async fn start_and_wait(
    to: PathBuf,
    meta: &PhysicalMeta,
    bin_dir: Option<PathBuf>,
    req: &RecoveryRequest,
) -> Result<RecoveryOutcome> {
    let tools = ClientTools::find(meta.server_major, bin_dir.as_deref())?;
    if tools.major != meta.server_major {
        return Err(EngineError::Config(format!(
            "--start needs the PostgreSQL {} server (found {} in {}): install postgresql-{} or set bin_dir",
            meta.server_major,
            tools.major,
            tools.bin_dir.display(),
            meta.server_major
        )));
    }
    let outcome = tokio::task::spawn_blocking(move || recovery::start_and_wait(&tools, &to))
        .await
        .expect("recovery watcher panicked")?;
    if outcome.state == RecoveryState::EndedBeforeTarget {
        return Err(EngineError::Recovery(format!(
            "recovery stopped before reaching the target {}: the archive lacks WAL up to it (see `lifeboat wal verify`), or the target precedes the base backup's consistent point; the restored data directory is left as it is; server log {}:\n{}",
            req.describe(),
            outcome.log.display(),
            outcome.log_tail.as_deref().unwrap_or_default()
        )));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_postgres_offsets_parse() {
        assert!(parse_time("2026-12-03 12:00:00.123456+00").is_ok());
        assert!(parse_time("2026-12-03T12:00:00Z").is_ok());
        assert!(parse_time("2026-12-03 12:00:00+05:30").is_ok());
        assert!(parse_time("2026-12-03 12:00:00").is_err());
    }

    #[test]
    fn settings_quote_for_the_conf_and_the_shell() {
        let r = RecoveryRequest {
            name: Some("it's".into()),
            fetch_command: vec![
                "/usr/bin/lifeboat".into(),
                "--config".into(),
                "/etc/a b.toml".into(),
            ],
            ..Default::default()
        };
        let s = r.settings("42").unwrap();
        assert_eq!(
            s[0],
            "restore_command = '/usr/bin/lifeboat --config ''/etc/a b.toml'' wal fetch --system-id 42 %f %p'"
        );
        assert_eq!(s[1], "recovery_target_name = 'it''s'");
        assert_eq!(s[2], "recovery_target_action = 'pause'");
    }
}
