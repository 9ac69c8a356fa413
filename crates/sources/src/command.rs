//! The `command` source: a program's standard output, for platform
//! configuration only a CLI can print (`vercel env pull`, `supabase secrets
//! list`, `env`).
//!
//! The program is started from `argv` directly (no shell unless the user
//! writes `sh -c`) through [`crate::process::user_command`]: a clean
//! environment (`PATH`, `HOME`, `TZ`, `LC_ALL=C`) plus the variables the
//! config lists explicitly. It runs in its own process group with stdin
//! closed. Its stdout is streamed ([`RunningCommand::stdout`]); stderr is
//! drained concurrently on a thread that keeps only the last
//! [`STDERR_TAIL`] bytes, for the error message. A watchdog thread kills the
//! whole process group when the timeout passes; when the program exits,
//! whatever it left running in its group is killed too.
//! [`RunningCommand::finish`] turns the exit status into [`CommandError`].
//!
//! [`RedactingReader`] applies the `.env` redaction of [`crate::env`] to the
//! stream line by line, so memory stays bounded by [`MAX_LINE`] whatever the
//! output size.

use crate::env::{EnvLines, LineOutcome, Redactor};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of the program's stderr kept for the error message.
pub const STDERR_TAIL: usize = 4096;

/// Longest line redacted as a whole; a longer line is judged by its first
/// `MAX_LINE` bytes (where its `NAME=` is) and its rest copied or dropped.
pub const MAX_LINE: usize = 1 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables set for the program in addition to the allowlist.
    pub env: Vec<(String, String)>,
    /// Working directory (default: lifeboat's).
    pub dir: Option<PathBuf>,
    /// Time after which the program and its process group are killed.
    pub timeout: Duration,
}

impl CommandSpec {
    /// The program, for messages.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

/// Why a command source failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `argv` is empty.
    #[error("the command is empty: set `command = [\"program\", \"arg\", ...]`")]
    Empty,
    /// The program could not be started.
    #[error("cannot start {program:?}: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{program:?} failed ({status}); nothing was stored; its stderr ends with: {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Exit status as text (`exit status: 3`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The program ran past its timeout and was killed.
    #[error("{program:?} did not finish within {secs} s and was killed with its process group; nothing was stored (raise `timeout` in the source's config if it needs longer); its stderr ends with: {stderr}")]
    TimedOut {
        /// The program.
        program: String,
        /// The timeout in seconds.
        secs: u64,
        /// The end of its stderr.
        stderr: String,
    },
    /// Reading its output or waiting for it failed.
    #[error("running {program:?}: {source}")]
    Io {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl CommandError {
    /// Stable code of the failure (`command_failed`, `command_timeout`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Empty => "command_empty",
            CommandError::Spawn { .. } => "command_spawn",
            CommandError::Failed { .. } => "command_failed",
            CommandError::TimedOut { .. } => "command_timeout",
            CommandError::Io { .. } => "command_io",
        }
    }
}

/// A started command.
pub struct RunningCommand {
    program: String,
    timeout: Duration,
    child: Child,
    stdout: Option<CommandStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// Tells the stderr thread to stop once nothing more is readable.
    stderr_stop: Option<OwnedFd>,
    watchdog: Option<Watchdog>,
    finished: bool,
    /// Values of the variables passed in (`pass_env`): never quoted back.
    secrets: Vec<String>,
}

impl RunningCommand {
    /// Start `spec` in its own process group, stdin closed, stdout and
    /// stderr piped, the watchdog armed.
    pub fn spawn(spec: &CommandSpec) -> Result<Self, CommandError> {
        use std::os::unix::process::CommandExt;
        let (program, args) = spec.argv.split_first().ok_or(CommandError::Empty)?;
        let mut cmd = crate::process::user_command(program);
        cmd.args(args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &spec.dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
            program: program.clone(),
            source,
        })?;
        // No deadline for a timeout past what an Instant holds.
        let deadline = Instant::now().checked_add(spec.timeout);
        let (stderr, stderr_stop) = match child.stderr.take() {
            Some(e) => {
                let stop = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
                    .map_err(|e| CommandError::Io {
                        program: program.clone(),
                        source: e.into(),
                    })?;
                let reader = UntilStopped {
                    inner: e,
                    stop: stop.try_clone().map_err(|source| CommandError::Io {
                        program: program.clone(),
                        source,
                    })?,
                };
                let thread = std::thread::spawn(move || tail(reader, STDERR_TAIL));
                (Some(thread), Some(stop))
            }
            None => (None, None),
        };
        let watchdog = Watchdog::arm(Pid::from_child(&child), spec.timeout);
        let stdout = child.stdout.take().map(|inner| CommandStdout {
            inner,
            deadline,
            watch: watchdog.state.clone(),
        });
        Ok(RunningCommand {
            program: program.clone(),
            timeout: spec.timeout,
            child,
            stdout,
            stderr,
            stderr_stop,
            watchdog: Some(watchdog),
            finished: false,
            secrets: spec.env.iter().map(|(_, v)| v.clone()).collect(),
        })
    }

    /// The program's standard output (once); reading it fails at the
    /// timeout (see [`CommandStdout`]).
    pub fn stdout(&mut self) -> Option<CommandStdout> {
        self.stdout.take()
    }

    /// Whether the timeout has passed and the process group was killed
    /// (then [`finish`](Self::finish) reports [`CommandError::TimedOut`]).
    pub fn timed_out(&self) -> bool {
        self.watchdog
            .as_ref()
            .is_some_and(|w| w.state.fired.load(Ordering::SeqCst))
    }

    /// Wait for the program (its stdout should have been read to the end),
    /// disarm the watchdog and judge the exit status.
    pub fn finish(mut self) -> Result<(), CommandError> {
        self.finished = true;
        drop(self.stdout.take());
        let status = self.wait();
        self.stop_stderr();
        let timed_out = self.watchdog.take().is_some_and(Watchdog::disarm);
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .map(|b| scrub(String::from_utf8_lossy(&b).trim(), &self.secrets))
            .unwrap_or_default();
        let status = status.map_err(|source| CommandError::Io {
            program: self.program.clone(),
            source,
        })?;
        if timed_out {
            return Err(CommandError::TimedOut {
                program: self.program.clone(),
                secs: self.timeout.as_secs(),
                stderr: or_nothing(stderr),
            });
        }
        if !status.success() {
            return Err(CommandError::Failed {
                program: self.program.clone(),
                status: status.to_string(),
                stderr: or_nothing(stderr),
            });
        }
        Ok(())
    }

    /// The group is gone: what still holds stderr open left the group, so
    /// the stderr thread reads what is there and stops (it would wait for
    /// that process otherwise).
    fn stop_stderr(&mut self) {
        if let Some(stop) = self.stderr_stop.take() {
            let _ = rustix::io::write(&stop, &1u64.to_ne_bytes());
        }
    }

    /// Wait for the program to exit without reaping it, kill what is left in
    /// its process group, fence off the watchdog (so it never signals a
    /// reused process group id), then reap it.
    fn wait(&mut self) -> io::Result<ExitStatus> {
        let pid = Pid::from_child(&self.child);
        loop {
            match rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => break,
            }
        }
        // The leader is a zombie until reaped, so its group id is still ours:
        // kill what it left running in its group (it would hold stderr open).
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        if let Some(w) = &self.watchdog {
            w.fence();
        }
        self.child.wait()
    }
}

impl Drop for RunningCommand {
    /// A command abandoned before [`RunningCommand::finish`] (the backup
    /// failed while reading it) is killed with its process group and reaped.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        drop(self.stdout.take());
        if let Some(w) = self.watchdog.take() {
            w.kill_now();
        }
        let _ = self.child.wait();
        self.stop_stderr();
    }
}

/// The stderr tail as it may appear in an error message (and so in logs):
/// the values of the variables passed in, passwords in URLs and the values
/// of secret-looking `NAME=value` lines replaced by `<redacted>`.
fn scrub(stderr: &str, secrets: &[String]) -> String {
    let mut text = stderr.to_string();
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| s.len() >= 3)
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        text = text.replace(s, crate::env::REDACTED);
    }
    let words: String = text
        .split_inclusive(char::is_whitespace)
        .map(|w| match w.contains("://") {
            true => crate::env::redact_url_password(w).unwrap_or_else(|| w.to_string()),
            false => w.to_string(),
        })
        .collect();
    Redactor::default().redact_env_file(&words).0
}

fn or_nothing(stderr: String) -> String {
    if stderr.is_empty() {
        "(nothing)".into()
    } else {
        stderr
    }
}

/// Read `r` to its end, keeping the last `keep` bytes (from a line start
/// when one is in reach).
fn tail(mut r: impl Read, keep: usize) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::with_capacity(keep * 2);
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > keep * 2 {
                    kept.drain(..kept.len() - keep);
                    cut = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
        cut = true;
    }
    if cut {
        if let Some(nl) = kept.iter().position(|&b| b == b'\n') {
            kept.drain(..=nl);
        }
    }
    kept
}

/// The program's stderr until [`RunningCommand::stop_stderr`]: then what
/// is readable, and the end.
struct UntilStopped {
    inner: ChildStderr,
    stop: OwnedFd,
}

impl Read for UntilStopped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            let mut fds = [
                PollFd::new(&self.inner, PollFlags::IN),
                PollFd::new(&self.stop, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) if !fds[0].revents().is_empty() => return self.inner.read(buf),
                Ok(_) if !fds[1].revents().is_empty() => return Ok(0),
                Ok(_) => continue,
            }
        }
    }
}

/// The program's stdout. A read waits at most until the timeout: a
/// process that left the group (`setsid`, a daemonising helper) can hold
/// the pipe open after the group is killed, and the output would never
/// end. At the timeout the group is killed (as by the watchdog) and the
/// read fails with [`io::ErrorKind::TimedOut`].
pub struct CommandStdout {
    inner: ChildStdout,
    deadline: Option<Instant>,
    watch: Arc<WatchState>,
}

impl Read for CommandStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            let left = self
                .deadline
                .map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                self.watch.fire();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the command's output did not end within its timeout",
                ));
            }
            let wait = left.map(|l| Timespec {
                tv_sec: l.as_secs().min(i64::MAX as u64) as _,
                tv_nsec: l.subsec_nanos() as _,
            });
            let mut fds = [PollFd::new(&self.inner, PollFlags::IN)];
            match poll(&mut fds, wait.as_ref()) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => match self.inner.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                },
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Kills a process group when its time is up, unless disarmed first.
struct Watchdog {
    state: Arc<WatchState>,
    cancel: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

struct WatchState {
    pgid: Pid,
    /// Set once the group leader has exited: its id may be reused after
    /// reaping, so no signal is sent any more.
    fenced: Mutex<bool>,
    fired: AtomicBool,
}

impl WatchState {
    /// The time is up: mark it and kill the group.
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.kill();
    }

    fn kill(&self) {
        let fenced = self.fenced.lock().unwrap_or_else(|e| e.into_inner());
        if !*fenced {
            let _ = rustix::process::kill_process_group(self.pgid, Signal::KILL);
        }
    }
}

impl Watchdog {
    fn arm(pgid: Pid, timeout: Duration) -> Self {
        let state = Arc::new(WatchState {
            pgid,
            fenced: Mutex::new(false),
            fired: AtomicBool::new(false),
        });
        let (cancel, cancelled) = mpsc::channel::<()>();
        let thread = std::thread::spawn({
            let state = state.clone();
            move || {
                if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(timeout) {
                    state.fire();
                }
            }
        });
        Watchdog {
            state,
            cancel,
            thread,
        }
    }

    /// The leader has exited (not yet reaped): send nothing from now on.
    fn fence(&self) {
        *self.state.fenced.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Kill the group now (the command is abandoned).
    fn kill_now(self) {
        self.state.kill();
        self.disarm();
    }

    /// Stop the watchdog; whether it had fired.
    fn disarm(self) -> bool {
        let _ = self.cancel.send(());
        let _ = self.thread.join();
        self.state.fired.load(Ordering::SeqCst)
    }
}

/// Applies [`Redactor::redact_next_line`] to a stream, line by line (a
/// redacted multi-line quoted value is dropped up to its closing quote).
pub struct RedactingReader<R> {
    inner: BufReader<R>,
    redactor: Redactor,
    out: Vec<u8>,
    pos: usize,
    rest: LineRest,
    lines: EnvLines,
    redacted: usize,
}

/// What happens to the rest of an over-long line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LineRest {
    /// At a line start.
    None,
    /// Copied as is (its start was not redacted).
    Copy,
    /// Dropped up to its line break (its start was redacted).
    Drop,
    /// Dropped with its line break (a continuation line of a redacted
    /// multi-line value).
    DropAll,
}

impl<R: Read> RedactingReader<R> {
    /// Redact `inner` with `redactor`.
    pub fn new(inner: R, redactor: Redactor) -> Self {
        RedactingReader {
            inner: BufReader::with_capacity(64 << 10, inner),
            redactor,
            out: Vec::new(),
            pos: 0,
            rest: LineRest::None,
            lines: EnvLines::default(),
            redacted: 0,
        }
    }

    /// How many values were redacted so far.
    pub fn redacted(&self) -> usize {
        self.redacted
    }

    /// Refill `out`; `false` at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.pos = 0;
        if self.rest != LineRest::None {
            return self.fill_rest();
        }
        let n = (&mut self.inner)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut self.out)?;
        if n == 0 {
            return Ok(false);
        }
        let complete = self.out.last() == Some(&b'\n');
        if !complete && n == MAX_LINE {
            self.rest = LineRest::Copy;
        }
        // A line that is not UTF-8 is judged by its lossy text, and replaced
        // by that text only when something is redacted. The closing quote of
        // a multi-line value is looked for in the first MAX_LINE bytes of
        // each line only.
        let text = String::from_utf8_lossy(&self.out).into_owned();
        match self.redactor.redact_next_line(&mut self.lines, &text) {
            LineOutcome::Keep => {}
            LineOutcome::Replace(red) => {
                self.redacted += 1;
                self.out = red.into_bytes();
                if self.rest == LineRest::Copy {
                    self.rest = LineRest::Drop;
                }
            }
            LineOutcome::Drop => {
                self.out.clear();
                if self.rest == LineRest::Copy {
                    self.rest = LineRest::DropAll;
                }
            }
        }
        Ok(true)
    }

    /// The continuation of an over-long line, up to and with its line break.
    fn fill_rest(&mut self) -> io::Result<bool> {
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let (len, ends) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        match self.rest {
            LineRest::Drop if ends => self.out.push(b'\n'),
            LineRest::Drop | LineRest::DropAll => {}
            _ => self.out.extend_from_slice(&buf[..len]),
        }
        self.inner.consume(len);
        if ends {
            self.rest = LineRest::None;
        }
        Ok(true)
    }
}

impl<R: Read> Read for RedactingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact_all(input: &[u8]) -> (Vec<u8>, usize) {
        let mut r = RedactingReader::new(input, Redactor::default());
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, r.redacted())
    }

    #[test]
    fn streams_are_redacted_like_env_files() {
        let (out, n) = redact_all(b"API_KEY=sk_live_x\nPORT=3000\nDB=postgres://u:pw@h/d\nlast");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "API_KEY=<redacted>\nPORT=3000\nDB=postgres://u:<redacted>@h/d\nlast"
        );
        assert_eq!(n, 2);
        let (out, n) = redact_all(b"\xff\xfe=1\nTOKEN=\xff\n");
        assert_eq!(out, b"\xff\xfe=1\nTOKEN=<redacted>\n");
        assert_eq!(n, 1);
    }

    #[test]
    fn a_multi_line_secret_is_dropped_whole_from_a_stream() {
        let (out, n) =
            redact_all(b"A=1\nPRIVATE_KEY=\"-----BEGIN-----\nMIIEvQ\n-----END-----\"\nB=2\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A=1\nPRIVATE_KEY=<redacted>\nB=2\n"
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn over_long_lines_are_judged_by_their_start() {
        let long = "x".repeat(MAX_LINE * 2 + 10);
        let input = format!("SECRET_TOKEN={long}\nPLAIN={long}\nEND=1\n");
        let (out, n) = redact_all(input.as_bytes());
        let want = format!("SECRET_TOKEN=<redacted>\nPLAIN={long}\nEND=1\n");
        assert!(out == want.as_bytes(), "long lines mangled");
        assert_eq!(n, 1);
    }

    #[test]
    fn stderr_quoted_in_errors_has_no_passed_values_or_passwords() {
        let stderr = "error: token sk_live_abc123 rejected\nconnecting to postgres://app:hunter2@db/x failed\nAPI_SECRET=s3cr3t\nPORT=5432 ok";
        let got = scrub(stderr, &["sk_live_abc123".into(), "1".into()]);
        assert_eq!(
            got,
            "error: token <redacted> rejected\nconnecting to postgres://app:<redacted>@db/x failed\nAPI_SECRET=<redacted>\nPORT=5432 ok"
        );
    }

    #[test]
    fn a_timeout_past_what_an_instant_holds_means_no_deadline() {
        let spec = CommandSpec {
            argv: vec!["sh".into(), "-c".into(), "echo out; echo err >&2".into()],
            env: vec![],
            dir: None,
            timeout: Duration::from_secs(u64::MAX),
        };
        let mut cmd = RunningCommand::spawn(&spec).unwrap();
        let mut out = String::new();
        cmd.stdout().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "out\n");
        cmd.finish().unwrap();
    }

    #[test]
    fn stderr_tail_keeps_the_end_from_a_line_start() {
        let mut input = String::new();
        for i in 0..2000 {
            input.push_str(&format!("line {i}\n"));
        }
        let t = String::from_utf8(tail(input.as_bytes(), 100)).unwrap();
        assert!(t.starts_with("line ") && t.ends_with("line 1999\n"), "{t}");
        assert!(t.len() <= 100);
        assert_eq!(tail(&b"short"[..], 100), b"short");
    }
}
