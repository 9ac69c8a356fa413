//! Scheduled jobs end to end with the real binary: `run-due` runs what the
//! schedule says is due and records it in the repository's job history
//! (read back through the library); a missed slot is made up once; two
//! `run-due` at once never run two jobs of one source; a run-due killed
//! with SIGKILL mid-backup leaves a repository that verifies, an
//! interrupted record, and a next run that succeeds. Nothing here waits on
//! a clock: slow jobs are command sources that block until the test
//! releases them, and missed slots use the test-only `LIFEBOAT_TEST_NOW`.

mod common;

use common::*;
use lifeboat_repo::jobs::{JobEvent, JobRecord, JobResult};
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A workspace with a repository, `lifeboat.toml` holding `sources`, and a
/// private job lock directory.
fn workspace(sources: &str) -> Workspace {
    let ws = Workspace::init();
    fs::write(ws.path("lifeboat.toml"), sources).unwrap();
    ws
}

fn env(ws: &Workspace) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("LIFEBOAT_CONFIG", ws.path("lifeboat.toml").into_os_string()),
        ("LIFEBOAT_LOCK_DIR", ws.path("locks").into_os_string()),
    ]
}

fn cmd(ws: &Workspace, extra: &[(&str, &str)]) -> Command {
    let mut c = ws.cmd();
    for (k, v) in env(ws) {
        c.env(k, v);
    }
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

/// `run-due --json` with `extra` environment, asserting exit `code`.
#[track_caller]
fn run_due(ws: &Workspace, extra: &[(&str, &str)], code: i32) -> serde_json::Value {
    let r = run_cmd(cmd(ws, extra), &["--json", "run-due"]);
    r.code(code);
    r.json()
}

/// Run another command with the workspace's config.
fn run(ws: &Workspace, args: &[&str]) -> Run {
    let e = env(ws);
    let e: Vec<(&str, &OsStr)> = e.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    ws.run_env(args, &e)
}

/// The job history, through the library.
fn history(ws: &Workspace) -> Vec<JobRecord> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let storage = std::sync::Arc::new(lifeboat_storage::local::LocalStorage::new(&ws.repo));
        let pw = fs::read_to_string(&ws.pass).unwrap();
        let repo = lifeboat_repo::Repository::open(
            storage,
            lifeboat_repo::Credentials::Password(pw.trim_end().as_bytes().to_vec().into()),
        )
        .await
        .unwrap();
        let (jobs, bad) = lifeboat_repo::jobs::jobs_checked(&repo).await.unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        jobs
    })
}

fn finished(h: &[JobRecord]) -> Vec<&JobRecord> {
    h.iter().filter(|r| r.event == JobEvent::Finished).collect()
}

/// Wait (generously) until `cond` holds.
#[track_caller]
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A files source `cfg` over `data/` plus a command source `slow` that
/// writes `slow.started`, appends to `slow.log`, and waits for `slow.go`.
fn blocking_sources(ws: &Workspace, schedule: &str) -> String {
    fs::create_dir_all(ws.path("data")).unwrap();
    fs::write(ws.path("data/app.toml"), "port = 8080\n").unwrap();
    let dir = ws.path("").display().to_string();
    let script = format!(
        "echo start >> {dir}/slow.log; touch {dir}/slow.started; \
         while [ ! -e {dir}/slow.go ]; do sleep 0.05; done; echo end >> {dir}/slow.log; echo done"
    );
    format!(
        "[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\n\
         schedule = {{ backup = \"{schedule}\" }}\n\n\
         [[source]]\nname = \"slow\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\n\
         schedule = {{ backup = \"{schedule}\" }}\n"
    )
}

/// A running `run-due`; on drop (also when the test fails) the blocked
/// command is released and the process killed, so nothing outlives the test.
struct Running {
    child: Option<Child>,
    go: std::path::PathBuf,
}

impl Running {
    fn take(&mut self) -> Child {
        self.child.take().expect("child")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = fs::write(&self.go, "");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_run_due(ws: &Workspace, source: &str) -> Running {
    let mut c = cmd(ws, &[]);
    c.args(["--json", "run-due", "--source", source])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Running {
        child: Some(c.spawn().expect("spawn run-due")),
        go: ws.path("slow.go"),
    }
}

#[test]
fn run_due_runs_due_jobs_records_them_and_makes_up_a_missed_slot_once() {
    let ws = workspace("");
    fs::create_dir_all(ws.path("data")).unwrap();
    fs::write(ws.path("data/app.toml"), "port = 8080\n").unwrap();
    fs::write(
        ws.path("lifeboat.toml"),
        "[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\n\
         retention = { last = 2 }\n\
         schedule = { backup = \"0 * * * *\", forget = \"30 * * * *\", verify = \"45 * * * *\", read_data_share = \"50%\" }\n",
    )
    .unwrap();
    // 10:50: every job's latest slot (10:00, 10:30, 10:45) never ran.
    let first = run_due(&ws, &[("LIFEBOAT_TEST_NOW", "2026-06-01T10:50:00Z")], 0);
    let kinds: Vec<&str> = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backup", "forget", "verify"], "{first}");
    assert!(first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["result"] == "ok"));
    assert_eq!(first["jobs"][0]["slot"], "2026-06-01T10:00:00Z");
    assert_eq!(first["next"].as_str().map(|s| s.len() > 10), Some(true));
    // The same hour again: nothing is due.
    let again = run_due(&ws, &[("LIFEBOAT_TEST_NOW", "2026-06-01T10:59:59Z")], 0);
    assert_eq!(again["jobs"], serde_json::json!([]), "{again}");
    // Five hours of downtime: each job runs once, for its latest slot.
    let later = run_due(&ws, &[("LIFEBOAT_TEST_NOW", "2026-06-01T15:50:00Z")], 0);
    let slots: Vec<(&str, &str)> = later["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["kind"].as_str().unwrap(), j["slot"].as_str().unwrap()))
        .collect();
    assert_eq!(
        slots,
        [
            ("backup", "2026-06-01T15:00:00Z"),
            ("forget", "2026-06-01T15:30:00Z"),
            ("verify", "2026-06-01T15:45:00Z")
        ],
        "{later}"
    );
    assert_eq!(
        run_due(&ws, &[("LIFEBOAT_TEST_NOW", "2026-06-01T15:51:00Z")], 0)["jobs"],
        serde_json::json!([])
    );

    // The history holds a started and a finished record per job, with figures.
    let h = history(&ws);
    assert_eq!(h.len(), 12, "{h:#?}");
    let done = finished(&h);
    assert!(
        done.iter().all(|r| r.result == Some(JobResult::Ok)),
        "{done:#?}"
    );
    let backups: Vec<_> = done.iter().filter(|r| r.kind == "backup").collect();
    let snaps = ws.snapshots();
    assert_eq!(snaps.len(), 2);
    for (b, s) in backups.iter().zip(&snaps) {
        assert_eq!(b.source, "cfg");
        assert_eq!(
            b.figures.snapshot.map(|i| i.to_string()).as_deref(),
            s["id"].as_str()
        );
        assert_eq!(b.figures.files, Some(1));
        assert_eq!(b.figures.bytes, Some(12));
        assert!(b.figures.duration_ms.is_some());
    }
    let verifies: Vec<_> = done.iter().filter(|r| r.kind == "verify").collect();
    assert_eq!(verifies.len(), 2);
    assert!(
        verifies.iter().all(|v| v.figures.bytes.unwrap_or(0) > 0),
        "{verifies:#?}"
    );

    // Prune keeps the history; the restored backup is the data.
    run(&ws, &["prune"]).ok();
    assert_eq!(history(&ws).len(), 12);
    let out = ws.path("out");
    run(&ws, &["restore", "latest", "--to", out.to_str().unwrap()]).ok();
    assert_same_tree(&ws.path("data"), &out.join("data"));
}

#[test]
fn a_failing_job_is_recorded_and_run_due_exits_22() {
    let ws = workspace(
        "[[source]]\nname = \"bad\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo oops >&2; exit 3\"]\n\
         schedule = { backup = \"0 2 * * *\" }\n",
    );
    let r = run_due(&ws, &[], 22);
    assert_eq!(r["jobs"][0]["result"], "failed", "{r}");
    let h = history(&ws);
    let done = finished(&h);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].result, Some(JobResult::Failed));
    let err = done[0].error.as_deref().unwrap();
    assert!(err.contains("oops") && err.contains("exit"), "{err}");
    // The failed slot waits for the next one: no retry loop.
    run_due(&ws, &[], 0);
    assert_eq!(history(&ws).len(), 2);
}

#[test]
fn two_run_due_at_once_never_run_two_jobs_of_one_source() {
    let ws = workspace("");
    fs::write(ws.path("lifeboat.toml"), blocking_sources(&ws, "0 2 * * *")).unwrap();
    let mut first = spawn_run_due(&ws, "slow");
    wait_for("the first job to start", || {
        ws.path("slow.started").exists()
    });
    // The second finds the source busy and runs nothing of it, while the
    // other source's job runs.
    let second = run_due(&ws, &[], 0);
    assert_eq!(second["busy"][0]["source"], "slow", "{second}");
    let ran: Vec<&str> = second["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["source"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["cfg"]);
    fs::write(ws.path("slow.go"), "").unwrap();
    let out = first.take().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(ws.path("slow.log")).unwrap(),
        "start\nend\n"
    );
    let h = history(&ws);
    let slow: Vec<_> = finished(&h)
        .into_iter()
        .filter(|r| r.source == "slow")
        .collect();
    assert_eq!(slow.len(), 1, "{h:#?}");
    assert_eq!(slow[0].result, Some(JobResult::Ok));
    // And now nothing is due for either.
    assert_eq!(run_due(&ws, &[], 0)["jobs"], serde_json::json!([]));
}

#[test]
fn a_run_due_killed_mid_backup_is_recorded_interrupted_and_the_next_run_succeeds() {
    let ws = workspace("");
    fs::write(ws.path("lifeboat.toml"), blocking_sources(&ws, "0 2 * * *")).unwrap();
    let mut victim = spawn_run_due(&ws, "slow");
    wait_for("the backup to start", || ws.path("slow.started").exists());
    let mut child = victim.take();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The command it ran is in its own process group; let it finish.
    fs::write(ws.path("slow.go"), "").unwrap();
    let h = history(&ws);
    assert_eq!(h.len(), 1, "only the started record: {h:#?}");
    assert_eq!(h[0].event, JobEvent::Started);
    run(&ws, &["verify"]).ok();

    let next = run_due(&ws, &[], 0);
    assert_eq!(
        next["interrupted"][0]["job"].as_str(),
        Some(h[0].job.as_str()),
        "{next}"
    );
    assert_eq!(next["interrupted"][0]["result"], "interrupted");
    let slow: Vec<_> = next["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["source"] == "slow")
        .collect();
    assert_eq!(slow.len(), 1, "the slot is retried: {next}");
    assert_eq!(slow[0]["result"], "ok");
    let h = history(&ws);
    let killed: Vec<_> = h.iter().filter(|r| r.job == h[0].job).collect();
    assert_eq!(killed.len(), 2);
    assert_eq!(killed[1].result, Some(JobResult::Interrupted));
    assert!(
        killed[1].error.as_deref().unwrap().contains("pid"),
        "{killed:#?}"
    );
    // Recorded once: the next run finds nothing to close and nothing due.
    let after = run_due(&ws, &[], 0);
    assert_eq!(after["interrupted"], serde_json::json!([]));
    assert_eq!(after["jobs"], serde_json::json!([]));
    run(&ws, &["verify", "--read-data"]).ok();
    let out = ws.path("out");
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--source",
            "slow",
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(fs::read_to_string(out.join("slow.out")).unwrap(), "done\n");
}

#[test]
fn run_due_without_schedules_or_with_a_bad_one_says_what_to_fix() {
    let ws = workspace("[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\n");
    let r = run_cmd(cmd(&ws, &[]), &["run-due", "--source", "cfg"]);
    r.error(15, &["source \"cfg\" has no schedule", "schedule = {"]);
    fs::write(
        ws.path("lifeboat.toml"),
        "[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\nschedule = { backup = \"0 25 * * *\" }\n",
    )
    .unwrap();
    let r = run_cmd(cmd(&ws, &[]), &["run-due"]);
    r.error(15, &["source \"cfg\": schedule.backup", "\"0 25 * * *\""]);
}

/// A running `lifeboat --json daemon`, its log lines collected; killed on
/// drop (also when the test fails), after releasing any blocked command.
struct Daemon {
    child: Option<Child>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    go: std::path::PathBuf,
}

impl Daemon {
    fn start(ws: &Workspace) -> Daemon {
        let mut c = cmd(ws, &[]);
        c.args(["--json", "daemon", "--stop-grace", "600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn daemon");
        let out = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Daemon {
            child: Some(child),
            lines,
            go: ws.path("slow.go"),
        }
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0);
    }

    /// Wait (generously) until `cond` holds, showing the log if it never does.
    #[track_caller]
    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; daemon log:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Wait for the exit; its status code.
    fn wait(&mut self) -> Option<i32> {
        self.child.take().unwrap().wait().unwrap().code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = fs::write(&self.go, "");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ok_runs(h: &[JobRecord], source: &str, kind: &str) -> usize {
    finished(h)
        .iter()
        .filter(|r| r.source == source && r.kind == kind && r.result == Some(JobResult::Ok))
        .count()
}

#[test]
fn the_daemon_runs_backups_forget_and_verify_for_several_cycles_reloads_and_stops_on_sigterm() {
    let ws = workspace("");
    fs::create_dir_all(ws.path("data")).unwrap();
    fs::write(ws.path("data/app.toml"), "port = 8080\n").unwrap();
    let config = "[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\n\
         retention = { last = 2 }\n\
         schedule = { backup = \"*/2 * * * * *\", forget = \"*/3 * * * * *\", verify = \"*/4 * * * * *\", read_data_share = \"50%\" }\n";
    fs::write(ws.path("lifeboat.toml"), config).unwrap();
    let mut d = Daemon::start(&ws);
    wait_for("three cycles of backup, forget and verify", || {
        let h = history(&ws);
        ok_runs(&h, "cfg", "backup") >= 3
            && ok_runs(&h, "cfg", "forget") >= 3
            && ok_runs(&h, "cfg", "verify") >= 3
    });
    // Each backup ran for a later slot than the one before.
    let h = history(&ws);
    let slots: Vec<&str> = finished(&h)
        .iter()
        .filter(|r| r.kind == "backup")
        .map(|r| r.slot.as_str())
        .collect();
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");

    // SIGHUP with a broken config keeps the old one.
    fs::write(ws.path("lifeboat.toml"), "[[source]]\nname = \"cfg\"\nkind = \"files\"\npaths = [\"data\"]\nschedule = { backup = \"nope\" }\n").unwrap();
    d.signal(libc::SIGHUP);
    wait_for("the reload error", || d.logged("config not reloaded"));
    assert!(d.logged("schedule.backup"), "{:?}", d.lines.lock().unwrap());
    let before = ok_runs(&history(&ws), "cfg", "backup");
    wait_for("backups to go on with the old config", || {
        ok_runs(&history(&ws), "cfg", "backup") > before
    });
    // A good one adds a source.
    fs::create_dir_all(ws.path("more")).unwrap();
    fs::write(ws.path("more/x"), "x\n").unwrap();
    fs::write(
        ws.path("lifeboat.toml"),
        format!("{config}\n[[source]]\nname = \"more\"\nkind = \"files\"\npaths = [\"more\"]\nschedule = {{ backup = \"*/2 * * * * *\" }}\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("the new source's backup", || {
        ok_runs(&history(&ws), "more", "backup") >= 1
    });
    assert!(d.logged("config reloaded"));

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(), Some(0), "SIGTERM is a clean stop");
    let h = history(&ws);
    let started = h.iter().filter(|r| r.event == JobEvent::Started).count();
    assert_eq!(started, finished(&h).len(), "every job finished: {h:#?}");
    assert!(finished(&h).iter().all(|r| r.result == Some(JobResult::Ok)));
    run(&ws, &["verify", "--read-data"]).ok();
}

#[test]
fn sigterm_lets_the_running_job_finish_then_the_daemon_exits_0() {
    let ws = workspace("");
    fs::write(ws.path("lifeboat.toml"), blocking_sources(&ws, "0 2 * * *")).unwrap();
    let mut d = Daemon::start(&ws);
    wait_for("the slow job to start", || ws.path("slow.started").exists());
    d.signal(libc::SIGTERM);
    wait_for("the daemon to say it waits", || {
        d.logged("letting the running job finish")
    });
    fs::write(ws.path("slow.go"), "").unwrap();
    assert_eq!(d.wait(), Some(0));
    let h = history(&ws);
    assert_eq!(ok_runs(&h, "slow", "backup"), 1, "{h:#?}");
    assert!(d.logged("daemon stopped"));
    // Nothing left behind that a later run trips on.
    let next = run_due(&ws, &[], 0);
    assert_eq!(next["interrupted"], serde_json::json!([]), "{next}");
}

#[test]
fn a_daemon_killed_mid_backup_restarts_records_the_interrupted_job_and_succeeds() {
    let ws = workspace("");
    fs::write(ws.path("lifeboat.toml"), blocking_sources(&ws, "0 2 * * *")).unwrap();
    let mut d = Daemon::start(&ws);
    wait_for("the slow job to start", || ws.path("slow.started").exists());
    d.signal(libc::SIGKILL);
    d.wait();
    fs::write(ws.path("slow.go"), "").unwrap();
    run(&ws, &["verify"]).ok();
    let mut again = Daemon::start(&ws);
    wait_for("the retried backup", || {
        ok_runs(&history(&ws), "slow", "backup") >= 1
    });
    again.signal(libc::SIGTERM);
    assert_eq!(again.wait(), Some(0));
    let h = history(&ws);
    let interrupted: Vec<_> = finished(&h)
        .into_iter()
        .filter(|r| r.result == Some(JobResult::Interrupted))
        .collect();
    assert_eq!(interrupted.len(), 1, "{h:#?}");
    assert_eq!(interrupted[0].source, "slow");
    run(&ws, &["verify", "--read-data"]).ok();
}

#[test]
fn the_shipped_systemd_units_pass_systemd_analyze_verify() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/systemd");
    let names = [
        "lifeboat.service",
        "lifeboat-run-due.service",
        "lifeboat-run-due.timer",
    ];
    let tmp = tempfile::tempdir().unwrap();
    for n in names {
        let text = fs::read_to_string(Path::new(dir).join(n)).unwrap();
        assert!(!text.contains("ExecStart") || text.contains("/usr/local/bin/lifeboat --config"));
        fs::write(
            tmp.path().join(n),
            text.replace("/usr/local/bin/lifeboat", BIN),
        )
        .unwrap();
    }
    let unit = fs::read_to_string(Path::new(dir).join("lifeboat.service")).unwrap();
    assert!(unit.contains(" daemon") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let run_due = fs::read_to_string(Path::new(dir).join("lifeboat-run-due.service")).unwrap();
    assert!(run_due.contains(" run-due") && run_due.contains("Type=oneshot"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: skipping `systemd-analyze verify` of contrib/systemd (the unit contents were checked)");
        return;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(names.iter().map(|n| tmp.path().join(n)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains(tmp.path().to_str().unwrap()),
        "systemd-analyze verify:\n{stderr}"
    );
}
