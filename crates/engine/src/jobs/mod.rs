//! Scheduled jobs: `run-due` (and, built on it, the daemon) decides from
//! each source's schedule ([`crate::schedule`]) and the job history in the
//! repository (`jobs/`, docs/FORMAT.md §19) which jobs are due, runs them
//! one at a time per source under a host lock ([`lock`]), and records a
//! started and a finished record for each.
//!
//! - [`due`]: the due rule (latest slot without a finished run; a missed
//!   run made up once) and unfinished jobs;
//! - [`exec`]: one job, through the engine's use cases;
//! - [`lock`]: the per-source `flock`;
//! - [`daemon`]: the long-running loop, with SIGTERM and SIGHUP.

pub mod daemon;
pub mod due;
pub mod exec;
pub mod lock;

use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::open::hostname;
use crate::schedule::{latest_slot, next_slot, JobKind, Schedule};
use jiff::Timestamp;
use lifeboat_repo::jobs::{self, JobEvent, JobFigures, JobRecord, JobResult, JOB_VERSION};
use lifeboat_repo::Repository;
use serde::Serialize;
use std::sync::Arc;

/// Test-only: RFC 3339 time `run-due` takes as "now" (to test missed slots
/// without waiting for them; documented as such in docs/CLI.md; never set
/// it in production).
pub const TEST_NOW_ENV: &str = "LIFEBOAT_TEST_NOW";

/// An unfinished job of another host counts as dead after this long.
pub const FOREIGN_UNFINISHED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunDueRequest {
    /// Only this source (default: every source with a schedule).
    pub source: Option<String>,
}

/// One job that ran (or whose death was recorded).
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    /// The job's id.
    pub job: String,
    /// Its source.
    pub source: String,
    /// What it did.
    pub kind: String,
    /// The slot it ran for.
    pub slot: String,
    /// When it started.
    pub started: String,
    /// When it ended.
    pub finished: String,
    /// How it ended.
    pub result: JobResult,
    /// What it measured.
    pub figures: JobFigures,
    /// Why it failed.
    pub error: Option<String>,
}

impl JobOutcome {
    fn from_record(r: &JobRecord) -> Self {
        JobOutcome {
            job: r.job.clone(),
            source: r.source.clone(),
            kind: r.kind.clone(),
            slot: r.slot.clone(),
            started: r.started.clone(),
            finished: r.finished.clone().unwrap_or_default(),
            result: r.result.unwrap_or(JobResult::Failed),
            figures: r.figures.clone(),
            error: r.error.clone(),
        }
    }
}

/// A source `run-due` left alone because another process holds its lock.
#[derive(Debug, Clone, Serialize)]
pub struct BusySource {
    /// The source.
    pub source: String,
    /// Its lock file.
    pub lock: String,
}

/// What `run-due` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunDueReport {
    /// "Now" as used for the due rule.
    pub now: String,
    /// Jobs whose process had died, recorded as interrupted now.
    pub interrupted: Vec<JobOutcome>,
    /// Jobs run, in order.
    pub jobs: Vec<JobOutcome>,
    /// Sources skipped: another process runs one of their jobs.
    pub busy: Vec<BusySource>,
    /// The next slot of any scheduled job after now.
    pub next: Option<String>,
}

impl RunDueReport {
    /// Whether a job failed (interrupted jobs found are not counted: the
    /// slot they ran for is retried).
    pub fn failed(&self) -> bool {
        self.jobs.iter().any(|j| j.result != JobResult::Ok)
    }
}

/// "Now": the clock, or [`TEST_NOW_ENV`] in tests.
pub fn now() -> Result<Timestamp> {
    match std::env::var(TEST_NOW_ENV) {
        Ok(s) => s.parse().map_err(|e| {
            EngineError::Config(format!("{TEST_NOW_ENV}={s:?} is not an RFC 3339 time: {e}"))
        }),
        Err(_) => Ok(Timestamp::now()),
    }
}

/// The sources to consider, with their checked schedules.
pub(crate) fn scheduled(ctx: &Ctx, only: Option<&str>) -> Result<Vec<(String, Schedule)>> {
    let Some(cfg) = &ctx.config else {
        return Err(EngineError::Config(
            "run-due needs a config with schedules: pass --config lifeboat.toml (or set LIFEBOAT_CONFIG)".into(),
        ));
    };
    if let Some(name) = only {
        let src = cfg.source(name)?;
        let s = Schedule::of(src)?.ok_or_else(|| {
            EngineError::Config(format!(
                "source {name:?} has no schedule; add e.g. schedule = {{ backup = \"0 2 * * *\" }} to it"
            ))
        })?;
        return Ok(vec![(name.to_string(), s)]);
    }
    let mut out = Vec::new();
    for src in &cfg.sources {
        if let Some(s) = Schedule::of(src)? {
            out.push((src.name.clone(), s));
        }
    }
    Ok(out)
}

/// Run every due job of every scheduled source (or of `req.source`), one at
/// a time per source, recording each in the job history.
pub async fn run_due(ctx: &Ctx, req: RunDueRequest) -> Result<RunDueReport> {
    let sources = scheduled(ctx, req.source.as_deref())?;
    let now = now()?;
    let repo = ctx.repo.open_without_index().await?;
    let dir = lock::lock_dir();
    let mut report = RunDueReport {
        now: now.to_string(),
        ..RunDueReport::default()
    };
    for (source, schedule) in &sources {
        let Some(_lock) = lock::try_lock(&dir, &repo.config().id, source)? else {
            report.busy.push(BusySource {
                source: source.clone(),
                lock: lock::lock_dir().display().to_string(),
            });
            continue;
        };
        run_source(ctx, &repo, source, schedule, now, &mut report).await?;
    }
    report.next = next_of(&sources, Timestamp::now().max(now)).map(|t| t.to_string());
    Ok(report)
}

/// The earliest slot after `t` across `sources`.
pub fn next_of(sources: &[(String, Schedule)], t: Timestamp) -> Option<Timestamp> {
    sources
        .iter()
        .flat_map(|(_, s)| s.jobs.iter())
        .filter_map(|j| next_slot(&j.cron, t))
        .min()
}

/// With the source's lock held: record its dead jobs, then run what is due.
async fn run_source(
    ctx: &Ctx,
    repo: &Arc<Repository>,
    source: &str,
    schedule: &Schedule,
    now: Timestamp,
    report: &mut RunDueReport,
) -> Result<()> {
    let (mut history, _unreadable) = jobs::jobs_checked(repo).await?;
    for dead in close_dead(repo, &history, source).await? {
        report.interrupted.push(JobOutcome::from_record(&dead));
        history.push(dead);
    }
    for job in &schedule.jobs {
        let Some(slot) = latest_slot(&job.cron, now) else {
            continue;
        };
        if !due::is_due(&history, source, job.kind, slot) {
            continue;
        }
        let rotation = finished_count(&history, source, JobKind::Verify);
        let done = run_recorded(ctx, repo, source, job.kind, slot, schedule, rotation).await?;
        report.jobs.push(JobOutcome::from_record(&done));
        history.push(done);
    }
    Ok(())
}

fn finished_count(history: &[JobRecord], source: &str, kind: JobKind) -> u64 {
    history
        .iter()
        .filter(|r| r.event == JobEvent::Finished && r.source == source && r.kind == kind.as_str())
        .count() as u64
}

/// Write an `interrupted` finished record for each unfinished job of
/// `source` that cannot be running: one of this host (its lock is ours
/// now), or of another host and older than [`FOREIGN_UNFINISHED_AFTER`].
async fn close_dead(
    repo: &Repository,
    history: &[JobRecord],
    source: &str,
) -> Result<Vec<JobRecord>> {
    let host = hostname();
    let now = Timestamp::now();
    let mut closed = Vec::new();
    for started in due::unfinished(history, source) {
        let old = started
            .started
            .parse::<Timestamp>()
            .map(|t| now.duration_since(t).unsigned_abs() > FOREIGN_UNFINISHED_AFTER)
            .unwrap_or(true);
        if started.host != host && !old {
            continue;
        }
        let record = JobRecord {
            event: JobEvent::Finished,
            finished: Some(now.to_string()),
            result: Some(JobResult::Interrupted),
            error: Some(format!(
                "the process running it (pid {} on {}) ended without recording the result (killed, crashed or the machine stopped)",
                started.pid, started.host
            )),
            ..started.clone()
        };
        jobs::put_job(repo, &record).await?;
        closed.push(record);
    }
    Ok(closed)
}

/// Record the start, run the job (bounded by the schedule's timeout),
/// record the end; returns the finished record.
async fn run_recorded(
    ctx: &Ctx,
    repo: &Repository,
    source: &str,
    kind: JobKind,
    slot: Timestamp,
    schedule: &Schedule,
    rotation: u64,
) -> Result<JobRecord> {
    let start = Timestamp::now();
    let started = JobRecord {
        version: JOB_VERSION,
        event: JobEvent::Started,
        job: job_id(),
        source: source.to_string(),
        kind: kind.as_str().to_string(),
        slot: slot.to_string(),
        host: hostname(),
        pid: std::process::id(),
        started: start.to_string(),
        finished: None,
        result: None,
        figures: JobFigures::default(),
        error: None,
    };
    jobs::put_job(repo, &started).await?;
    let outcome = run_bounded(ctx, source, kind, schedule, rotation).await;
    let end = Timestamp::now();
    let duration_ms = end.duration_since(start).as_millis().max(0) as u64;
    let (result, mut figures, error) = match outcome {
        Ok(f) => (JobResult::Ok, f, None),
        Err(e) => (JobResult::Failed, JobFigures::default(), Some(e)),
    };
    figures.duration_ms = Some(duration_ms);
    let finished = JobRecord {
        event: JobEvent::Finished,
        finished: Some(end.to_string()),
        result: Some(result),
        figures,
        error,
        ..started
    };
    jobs::put_job(repo, &finished).await?;
    Ok(finished)
}

/// The job, cut off at the schedule's timeout; the error as text.
async fn run_bounded(
    ctx: &Ctx,
    source: &str,
    kind: JobKind,
    schedule: &Schedule,
    rotation: u64,
) -> std::result::Result<JobFigures, String> {
    let job = exec::run_job(ctx, source, kind, schedule, rotation);
    let done = match schedule.timeout {
        Some(t) => match tokio::time::timeout(t, job).await {
            Ok(done) => done,
            Err(_) => {
                return Err(format!(
                "timed out after {} (schedule.timeout of source {source:?}); the job was cancelled",
                jiff::SignedDuration::try_from(t)
                    .map(|d| format!("{d:#}"))
                    .unwrap_or_else(|_| format!("{t:?}"))
            ))
            }
        },
        None => job.await,
    };
    done.map_err(|e| error_text(&e))
}

/// An error as recorded: its message with its class, e.g. `source: ...`.
fn error_text(e: &EngineError) -> String {
    format!("{}: {e}", e.code())
}

/// A random job id, 32 hex digits.
fn job_id() -> String {
    let b: [u8; 16] = lifeboat_repo::crypto::random_array();
    b.iter().map(|x| format!("{x:02x}")).collect()
}
