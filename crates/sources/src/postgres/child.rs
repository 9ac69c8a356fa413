//! PostgreSQL client tools running as streams: a reader or writer plus `finish()`.
//!
//! [`PgChild`] wraps [`crate::process::Running`] (clean environment, stderr
//! drained concurrently, its tail kept) with the connection target, so that
//! a failed run becomes the specific [`PgError`] the classifier names
//! (unreachable, authentication, lock timeout, ...). The functions here start
//! each tool the engine streams: `pg_dump` ([`start_dump`]), `pg_restore` into
//! a database ([`start_restore`]) or to SQL ([`start_to_sql`]), `pg_dumpall
//! --globals-only` ([`capture_globals`]) and `psql` running a user-facing SQL
//! script ([`start_script`]).

use std::io::Read;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Stdio};

use super::classify::classify_failure;
use super::conn::PgTarget;
use super::dump::{dump_command_for, globals_command, DumpOptions, DumpRun};
use super::error::{PgError, Result};
use super::restore_cmd::{
    check_restore, only_inherited_constraint_drop_errors, restore_command, RestoreOptions,
};
use super::tools::ClientTools;
use crate::process::{Output, Running, ToolError};

impl From<ToolError> for PgError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::Spawn { program, source } => PgError::Spawn { program, source },
            ToolError::Wait { tool, source } => PgError::io(format!("waiting for {tool}"), source),
            ToolError::Failed {
                tool,
                status,
                stderr,
            } => PgError::ToolFailed {
                tool,
                status: status.to_string(),
                stderr,
            },
        }
    }
}

/// A running client tool connected to `target`.
pub struct PgChild {
    running: Running,
    target: PgTarget,
}

impl PgChild {
    fn start(cmd: std::process::Command, tool: &str, target: &PgTarget) -> Result<Self> {
        Ok(PgChild {
            running: crate::process::start(cmd, tool)?,
            target: target.clone(),
        })
    }

    /// The tool's stdin (once), for tools that read the archive or script.
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.running.take_stdin()
    }

    /// The tool's stdout (once), for tools that write an archive or SQL.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.running.take_stdout()
    }

    /// Stops the tool (its input or output side failed); still call a finish.
    pub fn kill(&mut self) {
        self.running.kill();
    }

    /// Waits; a failure becomes the most specific [`PgError`] its stderr names.
    pub fn finish(self) -> Result<Output> {
        let tool = self.running.tool().to_string();
        let out = self.running.wait()?;
        if out.status.success() {
            return Ok(out);
        }
        Err(classify_failure(
            &tool,
            &self.target,
            &out.status.to_string(),
            &out.stderr,
        ))
    }

    /// Waits and returns status and stderr tail, whatever the status.
    pub fn wait(self) -> Result<Output> {
        Ok(self.running.wait()?)
    }
}

/// Runs `cmd` to the end: `input` (if any) fed to its stdin from a thread,
/// its whole stdout returned (for small outputs: query rows, a schema dump);
/// a failure is classified.
pub(crate) fn output_of(
    cmd: std::process::Command,
    tool: &str,
    target: &PgTarget,
    input: Option<String>,
) -> Result<Vec<u8>> {
    let mut child = PgChild::start(cmd, tool, target)?;
    let feeder = match (child.stdin(), input) {
        (Some(mut stdin), Some(text)) => Some(std::thread::spawn(move || {
            use std::io::Write;
            // A write error means the tool stopped reading; its status says why.
            let _ = stdin.write_all(text.as_bytes());
        })),
        _ => None,
    };
    let mut out = Vec::new();
    let read = match child.stdout() {
        Some(mut stdout) => stdout.read_to_end(&mut out).map(drop),
        None => Ok(()),
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    child.finish()?;
    read.map_err(|e| PgError::io(format!("reading {tool} output"), e))?;
    Ok(out)
}

/// `pg_dump -Fc -Z0` (see [`dump_command_for`]); the archive comes out of
/// [`PgChild::stdout`].
pub fn start_dump(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &DumpOptions,
    run: &DumpRun,
) -> Result<PgChild> {
    PgChild::start(
        dump_command_for(tools, target, opts, run),
        "pg_dump",
        target,
    )
}

/// `pg_dumpall --globals-only`: its SQL, read whole (it is small).
pub fn capture_globals(
    tools: &ClientTools,
    target: &PgTarget,
    roles_with_passwords: bool,
) -> Result<String> {
    let cmd = globals_command(tools, target, roles_with_passwords);
    let sql = output_of(cmd, "pg_dumpall", target, None)?;
    Ok(String::from_utf8_lossy(&sql).into_owned())
}

/// A running `pg_restore` into a database (see [`restore_command`]).
pub struct RestoreRun {
    child: PgChild,
    clean: bool,
}

/// Starts `pg_restore` into `target`'s database. Without `archive` the
/// archive goes into [`RestoreRun::stdin`].
pub fn start_restore(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &RestoreOptions,
    list_file: Option<&Path>,
    archive: Option<&Path>,
) -> Result<RestoreRun> {
    let cmd = restore_command(tools, target, opts, list_file, archive);
    Ok(RestoreRun {
        child: PgChild::start(cmd, "pg_restore", target)?,
        clean: opts.clean,
    })
}

impl RestoreRun {
    /// pg_restore's stdin (once), when it reads the archive from there.
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin()
    }

    /// Stops pg_restore (the archive source failed); still call [`finish`](Self::finish).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Waits and judges the outcome ([`check_restore`]); with `--clean`, the
    /// harmless "cannot drop inherited constraint" errors alone are success.
    pub fn finish(self) -> Result<()> {
        let target = self.child.target.clone();
        let out = self.child.wait()?;
        if self.clean && !out.status.success() && only_inherited_constraint_drop_errors(&out.stderr)
        {
            return Ok(());
        }
        check_restore(&target, out.status, &out.stderr)
    }
}

/// `pg_restore --file=-`: the archive into [`PgChild::stdin`], the SQL script
/// out of [`PgChild::stdout`]. No database connection.
pub fn start_to_sql(tools: &ClientTools) -> Result<PgChild> {
    let mut cmd = crate::process::command(&tools.pg_restore);
    cmd.arg("--file=-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let nowhere = PgTarget::default();
    PgChild::start(cmd, "pg_restore", &nowhere)
}

/// `psql -f -` running a user-facing SQL script (the captured globals) from
/// [`PgChild::stdin`], going on after errors (`ON_ERROR_STOP=0`): the
/// errors are in the stderr of [`PgChild::wait`].
pub fn start_script(tools: &ClientTools, target: &PgTarget) -> Result<PgChild> {
    let mut cmd = crate::process::command(&tools.psql);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-"]);
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    PgChild::start(cmd, "psql", target)
}
