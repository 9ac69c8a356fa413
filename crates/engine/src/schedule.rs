//! Schedules of a source (`schedule = { ... }` in `lifeboat.toml`): which
//! jobs run when, for `run-due` and the daemon.
//!
//! Each job kind ([`JobKind`]) has a cron expression in UTC (5 fields, or 6
//! with seconds first), parsed by `croner`. The table also holds the job
//! `timeout` and the verify job's `read_data_share`. Everything is checked
//! when the config loads ([`Schedule::of`]), with errors naming the source,
//! the key and the fix. Slot arithmetic ([`latest_slot`], [`next_slot`])
//! works on `jiff` timestamps with whole-second precision.

use crate::config::{SourceConfig, SourceKind};
use crate::error::{EngineError, Result};
use croner::Cron;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::time::Duration;

/// The `schedule` table of a source, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Backup of a `files` or `command` source.
    pub backup: Option<String>,
    /// Logical backup of a `postgres` source.
    pub logical: Option<String>,
    /// Physical backup of a `postgres` source (needs `pgdata`).
    pub physical: Option<String>,
    /// `forget` with the source's `retention`.
    pub forget: Option<String>,
    /// `prune` of the repository.
    pub prune: Option<String>,
    /// `verify` of the repository (with `read_data_share`, a rotating share of packs).
    pub verify: Option<String>,
    /// Restore test of the source's latest logical snapshot.
    pub restore_test: Option<String>,
    /// `copy` of the source's snapshots to its `copy_to` repositories.
    pub copy: Option<String>,
    /// Longest a job of this source may run (`"2h"`, `"30m"`, or seconds).
    pub timeout: Option<toml::Value>,
    /// Share of packs the verify job reads each run (`"10%"`): a different
    /// slice each run, so every pack is read once per `100 / share` runs.
    pub read_data_share: Option<String>,
}

/// What a scheduled job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// Backup of a files or command source.
    Backup,
    /// Logical PostgreSQL backup.
    Logical,
    /// Physical PostgreSQL backup.
    Physical,
    /// Retention.
    Forget,
    /// Prune.
    Prune,
    /// Repository check.
    Verify,
    /// Restore test.
    RestoreTest,
    /// Copy to other repositories.
    Copy,
}

impl JobKind {
    /// Every kind, in the order jobs of one source run when several are due.
    pub const ALL: [JobKind; 8] = [
        JobKind::Backup,
        JobKind::Logical,
        JobKind::Physical,
        JobKind::Copy,
        JobKind::Forget,
        JobKind::Prune,
        JobKind::Verify,
        JobKind::RestoreTest,
    ];

    /// The key in the schedule table and the `kind` in job records.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Logical => "logical",
            JobKind::Physical => "physical",
            JobKind::Forget => "forget",
            JobKind::Prune => "prune",
            JobKind::Verify => "verify",
            JobKind::RestoreTest => "restore_test",
            JobKind::Copy => "copy",
        }
    }

    /// The kind named `s` (a schedule key or a job record's `kind`).
    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it is a backup of some kind.
    pub fn is_backup(self) -> bool {
        matches!(self, JobKind::Backup | JobKind::Logical | JobKind::Physical)
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scheduled job of a source.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    /// What it does.
    pub kind: JobKind,
    /// The cron expression as written.
    pub expr: String,
    /// The parsed expression.
    pub cron: Cron,
}

/// A source's schedule, checked.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Jobs in [`JobKind::ALL`] order.
    pub jobs: Vec<ScheduledJob>,
    /// Longest a job may run; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Percentage of packs the verify job reads per run.
    pub read_data_share: Option<f64>,
}

impl Schedule {
    /// The checked schedule of `src`, `None` when it has none.
    pub fn of(src: &SourceConfig) -> Result<Option<Schedule>> {
        let Some(cfg) = &src.schedule else {
            return Ok(None);
        };
        let mut jobs = Vec::new();
        for kind in JobKind::ALL {
            if let Some(expr) = cfg.expr(kind) {
                allowed(src, kind)?;
                let cron = parse_cron(expr).map_err(|why| {
                    bad(src, kind.as_str(), format!("{expr:?} is not a cron expression ({why}); write 5 fields (minute hour day-of-month month day-of-week, in UTC) or 6 with seconds first, e.g. \"0 2 * * *\""))
                })?;
                jobs.push(ScheduledJob {
                    kind,
                    expr: expr.to_string(),
                    cron,
                });
            }
        }
        let timeout = cfg
            .timeout
            .as_ref()
            .map(|v| parse_timeout(v).map_err(|why| bad(src, "timeout", why)))
            .transpose()?;
        let read_data_share = cfg
            .read_data_share
            .as_deref()
            .map(|s| parse_share(src, cfg, s))
            .transpose()?;
        Ok(Some(Schedule {
            jobs,
            timeout,
            read_data_share,
        }))
    }

    /// The job of `kind`, if scheduled.
    pub fn job(&self, kind: JobKind) -> Option<&ScheduledJob> {
        self.jobs.iter().find(|j| j.kind == kind)
    }
}

impl ScheduleConfig {
    fn expr(&self, kind: JobKind) -> Option<&str> {
        match kind {
            JobKind::Backup => self.backup.as_deref(),
            JobKind::Logical => self.logical.as_deref(),
            JobKind::Physical => self.physical.as_deref(),
            JobKind::Forget => self.forget.as_deref(),
            JobKind::Prune => self.prune.as_deref(),
            JobKind::Verify => self.verify.as_deref(),
            JobKind::RestoreTest => self.restore_test.as_deref(),
            JobKind::Copy => self.copy.as_deref(),
        }
    }
}

fn bad(src: &SourceConfig, key: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Config(format!("source {:?}: schedule.{key}: {why}", src.name))
}

/// Whether a job of `kind` makes sense for this source.
fn allowed(src: &SourceConfig, kind: JobKind) -> Result<()> {
    let pg = src.kind == SourceKind::Postgres;
    let why = match kind {
        JobKind::Backup if pg => Some("a postgres source schedules `logical` (and `physical`), not `backup`"),
        JobKind::Logical | JobKind::Physical if !pg => {
            Some("only a postgres source has logical and physical backups; schedule `backup` instead")
        }
        JobKind::Physical if src.pgdata.is_none() => {
            Some("a physical backup needs `pgdata` on the source (run on the database host)")
        }
        JobKind::RestoreTest if !pg => Some("restore tests are for postgres sources; remove the key"),
        JobKind::Forget if src.retention.is_none() => {
            Some("forget needs a `retention` policy on the source (docs/RETENTION.md), e.g. retention = { daily = 7 }")
        }
        JobKind::Copy if src.copy_to.is_empty() => {
            Some("copy needs `copy_to = [\"NAME\"]` on the source, naming [repositories.NAME]")
        }
        _ => None,
    };
    match why {
        Some(why) => Err(bad(src, kind.as_str(), why)),
        None => Ok(()),
    }
}

/// A cron expression: 5 fields, or 6 with seconds first; `@daily` and
/// friends; day-of-month and day-of-week combined with OR as in Vixie cron.
pub fn parse_cron(expr: &str) -> std::result::Result<Cron, String> {
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| e.to_string())
}

fn parse_timeout(v: &toml::Value) -> std::result::Result<Duration, String> {
    let fix = "write a duration such as \"2h\", \"30m\" or \"1h 30m\", or a number of seconds";
    let d = match v {
        toml::Value::Integer(n) if *n > 0 => Duration::from_secs(*n as u64),
        toml::Value::String(s) => s
            .parse::<SignedDuration>()
            .ok()
            .filter(|d| d.is_positive())
            .map(|d| d.unsigned_abs())
            .ok_or_else(|| format!("{s:?} is not a positive duration; {fix}"))?,
        other => return Err(format!("{other:?} is not a positive duration; {fix}")),
    };
    Ok(d)
}

fn parse_share(src: &SourceConfig, cfg: &ScheduleConfig, s: &str) -> Result<f64> {
    if cfg.verify.is_none() {
        return Err(bad(
            src,
            "read_data_share",
            "it applies to the verify job; schedule `verify` too, e.g. verify = \"0 4 * * *\"",
        ));
    }
    let v: Option<f64> = s.trim().trim_end_matches('%').trim().parse().ok();
    match v {
        Some(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(bad(
            src,
            "read_data_share",
            format!("{s:?} is not a percentage in (0, 100]; write e.g. \"10%\""),
        )),
    }
}

/// `t` truncated to the second, for croner.
fn to_chrono(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), 0).expect("timestamp in chrono's range")
}

fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from_second(t.timestamp()).expect("timestamp in jiff's range")
}

/// The first slot strictly after `t`, `None` when the expression never fires again.
pub fn next_slot(cron: &Cron, t: Timestamp) -> Option<Timestamp> {
    cron.find_next_occurrence(&to_chrono(t), false)
        .ok()
        .map(from_chrono)
}

/// The latest slot at or before `now`, `None` when it never fired in the
/// last 30 years. Searches back in doubling windows, so a slot every second
/// costs as little as one a year.
pub fn latest_slot(cron: &Cron, now: Timestamp) -> Option<Timestamp> {
    let now = Timestamp::from_second(now.as_second()).expect("in range");
    if cron.is_time_matching(&to_chrono(now)).unwrap_or(false) {
        return Some(now);
    }
    let mut window = 1i64;
    while window <= 30 * 366 * 86_400 {
        let start = now.checked_sub(SignedDuration::from_secs(window)).ok()?;
        if let Some(first) = next_slot(cron, start).filter(|s| *s <= now) {
            return Some(last_in(cron, first, now));
        }
        window *= 2;
    }
    None
}

/// The last slot in `[first, now]`, walking forward from `first` (a slot).
fn last_in(cron: &Cron, first: Timestamp, now: Timestamp) -> Timestamp {
    let mut cur = first;
    while let Some(n) = next_slot(cron, cur).filter(|n| *n <= now) {
        cur = n;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn source(extra: &str) -> std::result::Result<SourceConfig, String> {
        toml::from_str::<SourceConfig>(&format!(
            "name = \"main\"\nkind = \"postgres\"\nurl = \"env:X\"\n{extra}"
        ))
        .map_err(|e| e.to_string())
    }

    fn schedule_err(extra: &str) -> String {
        let src = source(extra).unwrap();
        Schedule::of(&src).unwrap_err().to_string()
    }

    #[test]
    fn a_daily_schedule_has_its_slots() {
        let c = parse_cron("0 2 * * *").unwrap();
        let now = ts("2026-12-03T11:30:00Z");
        assert_eq!(latest_slot(&c, now), Some(ts("2026-12-03T02:00:00Z")));
        assert_eq!(next_slot(&c, now), Some(ts("2026-12-04T02:00:00Z")));
        assert_eq!(
            latest_slot(&c, ts("2026-12-03T02:00:00Z")),
            Some(ts("2026-12-03T02:00:00Z")),
            "a slot at now is the latest"
        );
        let weekly = parse_cron("0 3 * * 0").unwrap();
        assert_eq!(
            latest_slot(&weekly, now),
            Some(ts("2026-11-29T03:00:00Z")),
            "the Sunday before"
        );
        let secs = parse_cron("*/5 * * * * *").unwrap();
        assert_eq!(
            latest_slot(&secs, ts("2026-12-03T11:30:07Z")),
            Some(ts("2026-12-03T11:30:05Z"))
        );
        assert_eq!(
            next_slot(&secs, ts("2026-12-03T11:30:05.5Z")),
            Some(ts("2026-12-03T11:30:10Z"))
        );
        let leap = parse_cron("0 0 29 2 *").unwrap();
        assert_eq!(latest_slot(&leap, now), Some(ts("2024-02-29T00:00:00Z")));
    }

    #[test]
    fn a_full_schedule_parses() {
        let src = source(
            "pgdata = \"/pg\"\nretention = { daily = 7 }\ncopy_to = [\"off\"]\n\
             schedule = { logical = \"0 2 * * *\", physical = \"0 3 * * 0\", forget = \"30 2 * * *\", \
             prune = \"0 5 * * 0\", verify = \"0 4 * * *\", restore_test = \"0 6 * * 1\", copy = \"0 7 * * *\", \
             timeout = \"2h 30m\", read_data_share = \"10%\" }",
        )
        .unwrap();
        let s = Schedule::of(&src).unwrap().unwrap();
        assert_eq!(s.jobs.len(), 7);
        assert_eq!(s.timeout, Some(Duration::from_secs(9000)));
        assert_eq!(s.read_data_share, Some(10.0));
        assert_eq!(s.job(JobKind::Physical).unwrap().expr, "0 3 * * 0");
        let secs = source("schedule = { logical = \"*/2 * * * * *\", timeout = 60 }").unwrap();
        let s = Schedule::of(&secs).unwrap().unwrap();
        assert_eq!(s.timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn mistakes_name_the_source_the_key_and_the_fix() {
        let e = schedule_err("schedule = { logical = \"0 2 * *\" }");
        assert!(
            e.contains("source \"main\": schedule.logical") && e.contains("e.g. \"0 2 * * *\""),
            "{e}"
        );
        let e = schedule_err("schedule = { backup = \"0 2 * * *\" }");
        assert!(
            e.contains("schedule.backup") && e.contains("`logical`"),
            "{e}"
        );
        let e = schedule_err("schedule = { physical = \"0 2 * * *\" }");
        assert!(e.contains("pgdata"), "{e}");
        let e = schedule_err("schedule = { forget = \"0 2 * * *\" }");
        assert!(e.contains("retention"), "{e}");
        let e = schedule_err("schedule = { copy = \"0 2 * * *\" }");
        assert!(e.contains("copy_to"), "{e}");
        let e = schedule_err("schedule = { logical = \"0 2 * * *\", timeout = \"soon\" }");
        assert!(
            e.contains("schedule.timeout") && e.contains("\"2h\""),
            "{e}"
        );
        let e = schedule_err("schedule = { logical = \"0 2 * * *\", timeout = 0 }");
        assert!(e.contains("schedule.timeout"), "{e}");
        let e = schedule_err("schedule = { verify = \"0 2 * * *\", read_data_share = \"150%\" }");
        assert!(
            e.contains("schedule.read_data_share") && e.contains("10%"),
            "{e}"
        );
        let e = schedule_err("schedule = { read_data_share = \"10%\" }");
        assert!(e.contains("schedule `verify`"), "{e}");
        let e = source("schedule = { logcal = \"0 2 * * *\" }").unwrap_err();
        assert!(
            e.contains("unknown field `logcal`") && e.contains("logical"),
            "{e}"
        );
        let files: SourceConfig = toml::from_str(
            "name = \"cfg\"\nkind = \"files\"\npaths = [\"/etc\"]\nschedule = { logical = \"0 2 * * *\" }",
        )
        .unwrap();
        let e = Schedule::of(&files).unwrap_err().to_string();
        assert!(
            e.contains("source \"cfg\"") && e.contains("`backup`"),
            "{e}"
        );
    }
}
