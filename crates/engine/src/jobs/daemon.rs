//! `lifeboat daemon`: a long-running [`super::run_due`]. It runs what is
//! due at start (a missed run made up once), then sleeps until the next
//! slot of any source and runs what is due then, under the same per-source
//! locks as `run-due`, so both can be used on one host.
//!
//! Signals: SIGTERM (and SIGINT) stop it; a job that is running may finish
//! for up to the stop grace, then it is cancelled (its `started` record is
//! closed as interrupted by the next run; nothing else is left that a later
//! run trips on), and the daemon exits with success. SIGHUP reloads the
//! config: a config that does not load is logged and the old one is kept.

use super::{next_of, run_due, scheduled, RunDueReport, RunDueRequest};
use crate::ctx::{Ctx, RepoOptions};
use crate::error::Result;
use jiff::Timestamp;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// How to load the config and open the repository (reloaded on SIGHUP).
    pub repo: RepoOptions,
    /// How long a running job may go on after SIGTERM before it is cancelled.
    pub stop_grace: Duration,
}

/// What the daemon tells its log.
pub trait DaemonLog: Send + Sync {
    /// A line of information.
    fn info(&self, msg: &str);
    /// An error that does not stop the daemon.
    fn error(&self, msg: &str);
    /// The report of one round of due jobs.
    fn round(&self, report: &RunDueReport);
}

/// The longest single sleep: the clock is looked at again at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Wake {
    Time,
    Stop,
    Reload,
}

impl Signals {
    fn new() -> Result<Self> {
        let io = |e| crate::error::EngineError::Io {
            context: "cannot install signal handlers".into(),
            source: e,
        };
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(io)?,
            int: signal(SignalKind::interrupt()).map_err(io)?,
            hup: signal(SignalKind::hangup()).map_err(io)?,
        })
    }

    /// Sleep for `d` or until a signal; a signal already pending wins,
    /// also with `d` zero (so back-to-back rounds still see SIGHUP).
    async fn sleep(&mut self, d: Duration) -> Wake {
        tokio::select! {
            biased;
            _ = self.term.recv() => Wake::Stop,
            _ = self.int.recv() => Wake::Stop,
            _ = self.hup.recv() => Wake::Reload,
            _ = tokio::time::sleep(d) => Wake::Time,
        }
    }
}

/// Run until SIGTERM. Fails only when the first config cannot be loaded.
pub async fn run(opts: DaemonOptions, log: &dyn DaemonLog) -> Result<()> {
    let mut ctx = load(&opts)?;
    let mut signals = Signals::new()?;
    log.info(&format!(
        "daemon started: {} scheduled source(s)",
        scheduled(&ctx, None)?.len()
    ));
    loop {
        // Slots that pass while a round runs are due in the next round.
        let since = Timestamp::now();
        let stop = round(&ctx, &opts, &mut signals, log).await;
        if stop {
            break;
        }
        match wait_for_next(&ctx, since, &mut signals, log).await {
            Wake::Time => {}
            Wake::Stop => break,
            Wake::Reload => reload(&opts, &mut ctx, log),
        }
    }
    log.info("daemon stopped");
    Ok(())
}

fn load(opts: &DaemonOptions) -> Result<Ctx> {
    let ctx = Ctx::new(opts.repo.clone())?;
    scheduled(&ctx, None)?;
    Ok(ctx)
}

fn reload(opts: &DaemonOptions, ctx: &mut Ctx, log: &dyn DaemonLog) {
    match load(opts) {
        Ok(new) => {
            *ctx = new;
            log.info("config reloaded");
        }
        Err(e) => log.error(&format!(
            "config not reloaded, keeping the previous one: {e}"
        )),
    }
}

/// One round of due jobs; true when SIGTERM arrived meanwhile (after the
/// round finished or was cancelled at the grace). SIGHUP during a round is
/// taken after it.
async fn round(
    ctx: &Ctx,
    opts: &DaemonOptions,
    signals: &mut Signals,
    log: &dyn DaemonLog,
) -> bool {
    let work = run_due(ctx, RunDueRequest::default());
    tokio::pin!(work);
    let stop = tokio::select! {
        done = &mut work => { report(done, log); return false; }
        _ = signals.term.recv() => true,
        _ = signals.int.recv() => true,
    };
    if stop {
        log.info(&format!(
            "stopping: letting the running job finish (up to {}s)",
            opts.stop_grace.as_secs()
        ));
        match tokio::time::timeout(opts.stop_grace, &mut work).await {
            Ok(done) => report(done, log),
            Err(_) => log.error(
                "stop grace over: the running job was cancelled; the next run records it as interrupted",
            ),
        }
    }
    stop
}

fn report(done: Result<RunDueReport>, log: &dyn DaemonLog) {
    match done {
        Ok(r) => log.round(&r),
        Err(e) => log.error(&format!("run of due jobs failed: {e}")),
    }
}

/// Sleep until the next slot after `since` of any source (re-reading the
/// clock at least every minute), or a signal.
async fn wait_for_next(
    ctx: &Ctx,
    since: Timestamp,
    signals: &mut Signals,
    log: &dyn DaemonLog,
) -> Wake {
    let sources = match scheduled(ctx, None) {
        Ok(s) => s,
        Err(e) => {
            log.error(&format!("{e}"));
            return signals.sleep(MAX_SLEEP).await;
        }
    };
    let Some(next) = next_of(&sources, since) else {
        return signals.sleep(MAX_SLEEP).await;
    };
    loop {
        let left = next.duration_since(Timestamp::now());
        let d = if left.is_positive() {
            left.unsigned_abs().min(MAX_SLEEP)
        } else {
            Duration::ZERO
        };
        match signals.sleep(d).await {
            Wake::Time if d.is_zero() => return Wake::Time,
            Wake::Time => continue,
            other => return other,
        }
    }
}
