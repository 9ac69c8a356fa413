//! Starting child processes from an empty environment.
//!
//! Every program lifeboat starts (`pg_dump`, `pg_dumpall`, `pg_restore`, `psql`,
//! `initdb`, `pg_ctl` and through it `postgres`, and a `command` source's
//! program) is built by [`command`], [`server_command`] or [`user_command`]:
//! the environment is cleared and only an allowlist is
//! passed on, so no repository password, no database URL and no unrelated
//! variable of lifeboat's own environment ever reaches a child (a server's
//! `COPY ... TO PROGRAM 'env'` would print it). What a child needs to connect
//! is then set explicitly by the caller (`PgTarget::apply_env`).
//!
//! Passed on to client tools: `PATH`, `HOME` (libpq finds `~/.pgpass` and
//! `~/.postgresql/root.crt` there), `TZ`, and the libpq *client configuration*
//! variables in [`CLIENT_CONFIG_ENV`] (certificate and key locations, a
//! password file, Kerberos settings): the operator's deliberate choices, none
//! of them a secret value. Server tools get `PATH` only; a `command`
//! source's program gets `PATH`, `HOME`, `TZ` and the variables its config
//! names in `pass_env`. All get `LC_ALL=C`,
//! so messages are the English ones errors are classified from.
//!
//! Passwords never travel in a child's environment: [`password_file`] makes an
//! unlinked 0600 file this process holds open, and the child reads it as
//! `PGPASSFILE=/proc/<our pid>/fd/<n>`. It has no name on disk, so nothing is
//! left behind even if lifeboat is killed, and only this user (or root) can open it.
//!
//! Running a child goes through [`start`] too: the caller streams its stdout
//! or stdin ([`Running::take_stdout`], [`Running::take_stdin`]) while a thread
//! drains stderr concurrently, keeping its last [`STDERR_TAIL`] bytes (a child
//! that fills the stderr pipe can never block), and [`Running::finish`] turns
//! the exit status and that tail into a [`ToolError`].

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Variables every child gets from lifeboat's environment (when set).
pub const BASE_ENV: &[&str] = &["PATH"];

/// Additionally passed to client tools (when set).
pub const CLIENT_ENV: &[&str] = &["HOME", "TZ"];

/// libpq client configuration passed to client tools (when set): locations of
/// certificates, keys, password and service files, Kerberos and GSSAPI settings.
/// Connection targets (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...) are never inherited.
pub const CLIENT_CONFIG_ENV: &[&str] = &[
    "PGPASSFILE",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLROOTCERT",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGREQUIREPEER",
    "PGKRBSRVNAME",
    "PGGSSLIB",
    "PGSYSCONFDIR",
    "KRB5CCNAME",
    "KRB5_CONFIG",
];

/// A command for a client tool (`pg_dump`, `psql`, ...): empty environment plus
/// [`BASE_ENV`], [`CLIENT_ENV`], [`CLIENT_CONFIG_ENV`] and `LC_ALL=C`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = bare(program);
    inherit(&mut cmd, CLIENT_ENV);
    inherit(&mut cmd, CLIENT_CONFIG_ENV);
    cmd
}

/// A command for a server tool (`initdb`, `pg_ctl`, and the `postgres` it
/// starts): empty environment plus [`BASE_ENV`] and `LC_ALL=C`.
pub fn server_command(program: impl AsRef<OsStr>) -> Command {
    bare(program)
}

/// A command for a user-configured program (a `command` source): empty
/// environment plus [`BASE_ENV`], [`CLIENT_ENV`] and `LC_ALL=C`; the caller
/// adds the variables the config lists explicitly.
pub fn user_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = bare(program);
    inherit(&mut cmd, CLIENT_ENV);
    cmd
}

fn bare(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    inherit(&mut cmd, BASE_ENV);
    cmd.env("LC_ALL", "C");
    cmd
}

fn inherit(cmd: &mut Command, names: &[&str]) {
    for name in names {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
}

/// How much of a child's stderr is kept: its last 64 KiB.
pub const STDERR_TAIL: usize = 64 * 1024;

/// A child process that could not be run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// Program path.
        program: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("waiting for {tool}: {source}")]
    Wait {
        /// Program name.
        tool: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// Program name.
        tool: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last [`STDERR_TAIL`] bytes of its stderr, trimmed.
        stderr: String,
    },
}

/// How a child ended: its status and the tail of its stderr.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// The last [`STDERR_TAIL`] bytes of stderr (lossy UTF-8).
    pub stderr: String,
}

/// A started child; see the module docs. Dropping it without [`finish`](Running::finish)
/// kills and reaps the child.
pub struct Running {
    tool: String,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
    finished: bool,
}

/// Starts `cmd` (built by [`command`] or [`server_command`], its stdin and
/// stdout set by the caller) with stderr drained by a thread. `tool` names
/// the program in errors.
pub fn start(mut cmd: Command, tool: &str) -> Result<Running, ToolError> {
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
            tail
        })
    });
    Ok(Running {
        tool: tool.to_string(),
        child,
        stderr,
        finished: false,
    })
}

impl Running {
    /// The child's stdin, when the command piped it (once).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stdout, when the command piped it (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The program name given to [`start`].
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// Stops the child (e.g. its input source failed); [`wait`](Running::wait) still reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Closes stdin, waits for the exit and returns status and stderr tail,
    /// whatever the status.
    pub fn wait(mut self) -> Result<Output, ToolError> {
        drop(self.child.stdin.take());
        drop(self.child.stdout.take());
        self.finished = true;
        let status = self.child.wait().map_err(|source| ToolError::Wait {
            tool: self.tool.clone(),
            source,
        })?;
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(Output {
            status,
            stderr: String::from_utf8_lossy(&tail).into_owned(),
        })
    }

    /// [`wait`](Running::wait), and a [`ToolError::Failed`] carrying the
    /// stderr tail when the child did not exit successfully.
    pub fn finish(self) -> Result<Output, ToolError> {
        let tool = self.tool.clone();
        let out = self.wait()?;
        if out.status.success() {
            return Ok(out);
        }
        Err(ToolError::Failed {
            tool,
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Creates a new file (it must not exist) with mode 0600 from the start, for
/// plaintext that must never be readable by others (spools, list files).
pub fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Unlinked password files, one per distinct password, open for the life of the process.
static PASSFILES: Mutex<Vec<(String, File)>> = Mutex::new(Vec::new());

/// A path a child process can use as `PGPASSFILE` for `password` (any host,
/// port, database and user): `/proc/<pid>/fd/<n>` of an unlinked 0600 file
/// this process keeps open. `None` when the password cannot be written in
/// libpq's password-file format (it contains a line break).
pub fn password_file(password: &str) -> std::io::Result<Option<PathBuf>> {
    if password.contains(['\n', '\r']) {
        return Ok(None);
    }
    let mut files = PASSFILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, f)) = files.iter().find(|(p, _)| p == password) {
        return Ok(Some(fd_path(f)));
    }
    let mut f = unlinked_private_file()?;
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    f.write_all(format!("*:*:*:*:{escaped}\n").as_bytes())?;
    f.flush()?;
    f.rewind()?;
    let path = fd_path(&f);
    files.push((password.to_string(), f));
    Ok(Some(path))
}

/// A 0600 file (created with that mode) without a name: `O_TMPFILE`, or where
/// the file system lacks it, a named file unlinked right after creation.
fn unlinked_private_file() -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = std::env::temp_dir();
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    match tmpfile {
        Ok(f) => Ok(f),
        Err(_) => Ok(tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)?
            .into_file()),
    }
}

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command) -> Vec<String> {
        cmd.get_envs()
            .filter_map(|(k, v)| v.map(|_| k.to_string_lossy().into_owned()))
            .collect()
    }

    #[test]
    fn children_start_from_an_allowlist() {
        // Set only in this test's process; the variable name is unique to it.
        std::env::set_var("LIFEBOAT_PROCESS_TEST_CANARY", "x");
        let client = command("true");
        let server = server_command("true");
        for cmd in [&client, &server] {
            let env = env_of(cmd);
            assert!(!env.contains(&"LIFEBOAT_PROCESS_TEST_CANARY".to_string()));
            assert!(env.contains(&"LC_ALL".to_string()));
        }
        assert!(!env_of(&server).contains(&"HOME".to_string()));
        let out = command("env").output().expect("env runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("LIFEBOAT_PROCESS_TEST_CANARY"), "{text}");
        assert!(text.contains("LC_ALL=C"), "{text}");
    }

    #[test]
    fn stderr_is_drained_while_stdout_streams() {
        // 4 MiB to stderr (far beyond a pipe's buffer) interleaved with 4 MiB
        // to stdout: reading only stdout must not block on a full stderr pipe.
        let mut cmd = command("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 64 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done; echo the-end >&2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
        let mut run = start(cmd, "sh").unwrap();
        let mut out = Vec::new();
        run.take_stdout().unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 64 * 65536);
        let done = run.finish().unwrap();
        assert_eq!(done.stderr.len(), STDERR_TAIL, "only the tail is kept");
        assert!(done.stderr.ends_with("the-end\n"));
    }

    #[test]
    fn a_failed_child_carries_its_stderr_tail() {
        let mut cmd = command("sh");
        cmd.args([
            "-c",
            "cat >/dev/null; echo 'first line' >&2; echo 'it broke' >&2; exit 3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
        let mut run = start(cmd, "sh").unwrap();
        run.take_stdin().unwrap().write_all(b"input").unwrap();
        match run.finish().unwrap_err() {
            ToolError::Failed {
                tool,
                status,
                stderr,
            } => {
                assert_eq!(tool, "sh");
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "first line\nit broke");
            }
            other => panic!("{other:?}"),
        }
        let err = start(command("/nonexistent/pg_dump"), "pg_dump")
            .err()
            .unwrap();
        assert!(matches!(err, ToolError::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn password_files_have_no_name_and_escape_separators() {
        let p = password_file("a:b\\c").unwrap().unwrap();
        assert_eq!(password_file("a:b\\c").unwrap().unwrap(), p, "reused");
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "*:*:*:*:a\\:b\\\\c\n");
        let target = std::fs::read_link(&p).unwrap();
        assert!(
            target.to_string_lossy().ends_with("(deleted)") || !target.exists(),
            "{target:?}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(password_file("multi\nline").unwrap(), None);
    }
}
