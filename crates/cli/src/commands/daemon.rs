//! `daemon`: run the scheduled jobs as they come due until SIGTERM; one log
//! line per event on stderr (with `--json`, one JSON object per line on
//! stdout, for journald or a collector).

use super::Context;
use crate::args::DaemonArgs;
use anyhow::Result;
use lifeboat_engine::jobs::daemon::{self, DaemonLog, DaemonOptions};
use lifeboat_engine::jobs::RunDueReport;
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(ctx: &Context, a: DaemonArgs) -> Result<ExitCode> {
    let g = &ctx.global;
    let opts = DaemonOptions {
        repo: super::repo_options(g),
        stop_grace: Duration::from_secs(a.stop_grace),
    };
    let log = Log { json: g.json };
    daemon::run(opts, &log).await?;
    Ok(ExitCode::SUCCESS)
}

struct Log {
    json: bool,
}

impl Log {
    fn line(&self, level: &str, msg: &str, extra: Option<serde_json::Value>) {
        let now = jiff::Timestamp::now();
        if self.json {
            let mut v =
                serde_json::json!({"time": now.to_string(), "level": level, "message": msg});
            if let Some(x) = extra {
                v["job"] = x;
            }
            crate::outln!("{v}");
        } else {
            eprintln!("{now} {level} {msg}");
        }
    }
}

impl DaemonLog for Log {
    fn info(&self, msg: &str) {
        self.line("info", msg, None);
    }

    fn error(&self, msg: &str) {
        self.line("error", msg, None);
    }

    fn round(&self, r: &RunDueReport) {
        for j in &r.interrupted {
            let msg = format!("{} {}: interrupted (slot {})", j.source, j.kind, j.slot);
            self.line("warn", &msg, serde_json::to_value(j).ok());
        }
        for b in &r.busy {
            let msg = format!(
                "{}: skipped, another lifeboat runs one of its jobs",
                b.source
            );
            self.line("info", &msg, None);
        }
        for j in &r.jobs {
            let level = if j.error.is_some() { "error" } else { "info" };
            let msg = match &j.error {
                None => format!("{} {}: ok (slot {})", j.source, j.kind, j.slot),
                Some(e) => format!(
                    "{} {}: {} (slot {}): {e}",
                    j.source,
                    j.kind,
                    j.result.as_str(),
                    j.slot
                ),
            };
            self.line(level, &msg, serde_json::to_value(j).ok());
        }
        if let Some(n) = &r.next {
            self.line("info", &format!("next slot {n}"), None);
        }
    }
}
