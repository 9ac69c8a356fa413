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

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

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
