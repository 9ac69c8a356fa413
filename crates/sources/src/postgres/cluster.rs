//! Throwaway PostgreSQL clusters: `initdb` + `pg_ctl` in a private temporary
//! directory, stopped and removed on drop (also when a test panics).
//!
//! Used by tests, by `verify --restore-test` / `drill`, and by the README demo.
//! PostgreSQL refuses to run as root, so when we are root the directory is handed
//! to the `postgres` OS user and the server tools run as that user
//! (`CommandExt::uid/gid`). Durability is switched off (`fsync=off`, ...): a
//! scratch cluster holds nothing worth a crash guarantee.
//!
//! Nobody else gets in: the server listens on no TCP port
//! (`listen_addresses = ''`), only on a Unix socket inside the cluster's 0700
//! directory (owned by the user the server runs as, so another OS user cannot
//! even reach the socket); every connection needs a password (SCRAM, `md5`
//! before PostgreSQL 10) that is random per cluster and travels to our client
//! tools only in an unlinked password file; and the server tools start from an
//! empty environment (`crate::process::server_command`), so a superuser's
//! `COPY ... TO PROGRAM 'env'` finds nothing of lifeboat's.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::catalog;
use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::psql;
use super::tools::ClientTools;
use crate::process;

/// The superuser name initdb creates.
pub const SUPERUSER: &str = "postgres";

/// The port number the socket file is named after (`.s.PGSQL.5432`). No TCP
/// port is opened, and the socket directory is private, so it never collides.
pub const SOCKET_PORT: u16 = 5432;

/// A running scratch cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct ScratchCluster {
    dir: Option<tempfile::TempDir>,
    tools: ClientTools,
    port: u16,
    pid: Option<u32>,
    run_as: Option<(u32, u32)>,
    password: String,
}

impl ScratchCluster {
    /// Creates and starts a cluster with the server binaries in `bin_dir`
    /// (which must also hold `psql`, e.g. `/usr/lib/postgresql/15/bin`), in the
    /// system temporary directory.
    pub fn start(bin_dir: &Path) -> Result<Self> {
        Self::start_in(bin_dir, None)
    }

    /// Like [`ScratchCluster::start`], with the cluster directory under `base_dir`.
    pub fn start_in(bin_dir: &Path, base_dir: Option<&Path>) -> Result<Self> {
        let tools = ClientTools::from_dir(bin_dir)?;
        let base = base_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        reap_orphans(&base);
        let mut builder = tempfile::Builder::new();
        builder.prefix("lifeboat-pg-");
        let dir = match base_dir {
            Some(b) => builder.tempdir_in(b),
            None => builder.tempdir(),
        }
        .map_err(|e| PgError::io("creating scratch cluster directory", e))?;
        let run_as = if running_as_root() {
            let ids = postgres_user_ids()?;
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))
                .map_err(|e| PgError::io("handing the scratch directory to postgres", e))?;
            Some(ids)
        } else {
            None
        };
        let mut cluster = ScratchCluster {
            dir: Some(dir),
            tools,
            port: SOCKET_PORT,
            pid: None,
            run_as,
            password: random_password()?,
        };
        // Who owns this cluster: a later start reaps it if that process is gone
        // (lifeboat killed with SIGKILL leaves a running server and restored rows).
        let owner = cluster.root().join(OWNER_FILE);
        std::fs::write(
            &owner,
            format!(
                "{}\n",
                process_identity(std::process::id()).unwrap_or_default()
            ),
        )
        .map_err(|e| PgError::io(format!("writing {}", owner.display()), e))?;
        cluster.make_private_dir(&cluster.socket_dir())?;
        cluster.initdb()?;
        cluster.pg_ctl_start()?;
        cluster.pid = Some(cluster.read_pid()?);
        Ok(cluster)
    }

    /// Creates `path` with mode 0700, owned by the user the server runs as.
    fn make_private_dir(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| PgError::io(format!("creating {}", path.display()), e))?;
        self.hand_over(path)
    }

    /// Hands `path` to the server's OS user (when we are root).
    fn hand_over(&self, path: &Path) -> Result<()> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| PgError::io(format!("handing {} to postgres", path.display()), e)),
            None => Ok(()),
        }
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    /// The private Unix socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.root().join("sock")
    }

    /// The server log file.
    pub fn log_file(&self) -> PathBuf {
        self.root().join("server.log")
    }

    /// The port number in the socket file's name (no TCP port is open).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Client tools of this cluster's version.
    pub fn tools(&self) -> &ClientTools {
        &self.tools
    }

    /// The password of every role this cluster creates (random per cluster).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:PASSWORD@/postgres?host=SOCKET_DIR&port=PORT`.
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER, "postgres")
    }

    /// The URL of database `db` as `user` (the password included: for tests
    /// and demos, which pass it to lifeboat like a production URL).
    pub fn url_for(&self, user: &str, db: &str) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'/' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        format!(
            "postgres://{}:{}@/{}?host={}&port={}",
            enc(user),
            enc(&self.password),
            enc(db),
            enc(&self.socket_dir().to_string_lossy()),
            self.port
        )
    }

    /// Connection target for the `postgres` database as the superuser.
    pub fn target(&self) -> PgTarget {
        self.target_as(SUPERUSER)
    }

    /// Connection target for the `postgres` database as `user`.
    pub fn target_as(&self, user: &str) -> PgTarget {
        PgTarget::from_parts(
            &self.socket_dir().to_string_lossy(),
            self.port,
            user,
            "postgres",
        )
        .with_password(Some(self.password.clone()))
    }

    /// Creates a login role without superuser, role-creation or database-creation
    /// rights, with the cluster's password; returns its target (`postgres` database).
    pub fn create_login_role(&self, name: &str) -> Result<PgTarget> {
        catalog::create_login_role(&self.tools, &self.target(), name, &self.password)?;
        Ok(self.target_as(name))
    }

    /// Runs an SQL script (test and demo fixtures, psql syntax) through `psql`
    /// in the `postgres` database; returns the rows.
    pub fn run_sql(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        psql::run_sql(&self.tools, &self.target(), sql)
    }

    /// Runs an SQL script through `psql` in database `db`; returns the rows.
    pub fn run_sql_in(&self, db: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        psql::run_sql(&self.tools, &self.target().with_database(db), sql)
    }

    /// Creates database `db`.
    pub fn create_database(&self, db: &str) -> Result<()> {
        catalog::create_database(&self.tools, &self.target(), db)
    }

    /// The last lines of the server log (for error messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn server_command(&self, program: &str) -> Command {
        let mut cmd = process::server_command(self.tools.program(program));
        cmd.current_dir(self.root()).env("HOME", self.root());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<Output> {
        let out = cmd.output().map_err(|source| PgError::Spawn {
            program: what.to_string(),
            source,
        })?;
        if !out.status.success() {
            return Err(PgError::Cluster {
                detail: format!(
                    "{what} failed ({}): {}{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim(),
                    self.log_tail()
                ),
            });
        }
        Ok(out)
    }

    fn initdb(&self) -> Result<()> {
        let utf8 = locale_available("C.utf8") || locale_available("C.UTF-8");
        // SCRAM from PostgreSQL 10 on; initdb then also sets password_encryption.
        let auth = if self.tools.major >= 10 {
            "scram-sha-256"
        } else {
            "md5"
        };
        let pwfile = self.root().join("pwfile");
        self.write_private(&pwfile, &format!("{}\n", self.password))?;
        let mut cmd = self.server_command("initdb");
        cmd.arg(format!("--auth-local={auth}"))
            .arg("--auth-host=reject")
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-sync"])
            .arg(if utf8 {
                "--locale=C.UTF-8"
            } else {
                "--locale=C"
            })
            .arg("-D")
            .arg(self.data_dir());
        let result = self.run(cmd, "initdb").map(|_| ());
        let _ = std::fs::remove_file(&pwfile);
        result
    }

    /// Writes a 0600 file (created with that mode) the server's user owns.
    fn write_private(&self, path: &Path, text: &str) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
            .map_err(|e| PgError::io(format!("writing {}", path.display()), e))?;
        f.flush()
            .map_err(|e| PgError::io(format!("writing {}", path.display()), e))?;
        self.hand_over(path)
    }

    fn pg_ctl_start(&self) -> Result<()> {
        self.pg_ctl_start_with("")
    }

    /// Starts the server; `extra` (already quoted for /bin/sh) follows the
    /// default options, so its settings win.
    fn pg_ctl_start_with(&self, extra: &str) -> Result<()> {
        // pg_ctl runs the postmaster through /bin/sh: quote for it.
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses='' -c unix_socket_permissions=0700 \
             -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c max_connections=30 -c shared_buffers=32MB",
            self.port,
            shell_quote(&self.socket_dir().to_string_lossy())
        );
        opts.push_str(extra);
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["start", "-o", &opts]);
        // pg_ctl's daemonized postmaster must not hold our pipes open.
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        self.run(cmd, "pg_ctl start").map(|_| ())
    }

    fn read_pid(&self) -> Result<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .map_err(|e| PgError::io("reading postmaster.pid", e))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| PgError::Cluster {
                detail: "postmaster.pid has no pid".into(),
            })
    }

    /// Whether `pid` is still our postmaster (alive, not a zombie, same data dir).
    fn is_our_postmaster(&self, pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // State is the field after the parenthesised command name.
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
        if stat.is_empty() || matches!(state, Some(Some('Z')) | Some(Some('X'))) {
            return false;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let data = self.data_dir();
        String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy())
    }

    fn signal(pid: u32, sig: &str) {
        let _ = process::server_command("kill")
            .args([sig, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn wait_gone(&self, pid: u32, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.is_our_postmaster(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.is_our_postmaster(pid)
    }

    fn stop_server(&mut self) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        if !self.is_our_postmaster(pid) {
            return Ok(());
        }
        // SIGINT = fast shutdown (disconnect clients, checkpoint); SIGQUIT = immediate;
        // SIGKILL as the last resort.
        for (sig, wait) in [
            ("-INT", Duration::from_secs(30)),
            ("-QUIT", Duration::from_secs(10)),
            ("-KILL", Duration::from_secs(5)),
        ] {
            Self::signal(pid, sig);
            if self.wait_gone(pid, wait) {
                return Ok(());
            }
        }
        Err(PgError::Cluster {
            detail: format!("postmaster {pid} did not exit"),
        })
    }

    /// Writes `text` to `name` in the data directory (mode 0600, owned by the
    /// server's user), replacing what is there: `pg_hba.conf`, certificates.
    pub fn write_data_file(&self, name: &str, text: &str) -> Result<()> {
        let path = self.data_dir().join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PgError::io(format!("replacing {}", path.display()), e))
            }
            _ => {}
        }
        self.write_private(&path, text)
    }

    /// Restarts the server listening on TCP as well (`listen_addresses`,
    /// socket and TCP on `port`) with the extra `settings` (`name`, `value`),
    /// e.g. `ssl = on`. For tests of TCP-only behaviour such as TLS.
    pub fn restart_on_tcp(
        &mut self,
        listen: &str,
        port: u16,
        settings: &[(&str, &str)],
    ) -> Result<()> {
        self.stop_server()?;
        self.port = port;
        let mut extra = format!(" -c listen_addresses={}", shell_quote(listen));
        for (name, value) in settings {
            extra.push_str(&format!(" -c {name}={}", shell_quote(value)));
        }
        self.pg_ctl_start_with(&extra)?;
        self.pid = Some(self.read_pid()?);
        Ok(())
    }

    /// Restarts the server (socket only, as before) with the extra
    /// `settings` (`name`, `value`) on its command line, e.g.
    /// `archive_mode = on` and an `archive_command` for WAL archiving tests.
    pub fn restart_with(&mut self, settings: &[(&str, &str)]) -> Result<()> {
        self.stop_server()?;
        let mut extra = String::new();
        for (name, value) in settings {
            extra.push_str(&format!(" -c {name}={}", shell_quote(value)));
        }
        self.pg_ctl_start_with(&extra)?;
        self.pid = Some(self.read_pid()?);
        Ok(())
    }

    /// Stops the server and removes the cluster directory.
    pub fn stop(mut self) -> Result<()> {
        self.stop_server()?;
        if let Some(dir) = self.dir.take() {
            dir.close()
                .map_err(|e| PgError::io("removing scratch cluster directory", e))?;
        }
        Ok(())
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let _ = self.stop_server();
        // TempDir removes the directory when dropped.
    }
}

/// File in a cluster's directory naming the process that owns it (pid and
/// start time, so a reused pid is not mistaken for the owner).
const OWNER_FILE: &str = "lifeboat-owner";

/// `"<pid> <start time>"` of a live process, from /proc.
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // Field 22 (starttime) is the 20th after the command name.
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Stops and removes scratch clusters under `base` whose owning lifeboat
/// process no longer exists (killed before it could clean up). Only
/// directories with an owner file are touched, and only those this user can
/// open (each is private to its owner).
fn reap_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let named = entry
            .file_name()
            .to_string_lossy()
            .starts_with("lifeboat-pg-");
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !named || !is_dir {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let owner = owner.trim();
        let Some(pid) = owner.split(' ').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if process_identity(pid).as_deref() == Some(owner) {
            continue;
        }
        let data = dir.join("data");
        if let Some(pm) = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        {
            let cmdline = std::fs::read(format!("/proc/{pm}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy()) {
                // Immediate shutdown, then the last resort.
                for sig in ["-QUIT", "-KILL"] {
                    ScratchCluster::signal(pm, sig);
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_secs(10)
                        && std::path::Path::new(&format!("/proc/{pm}")).exists()
                        && !std::fs::read_to_string(format!("/proc/{pm}/stat"))
                            .unwrap_or_default()
                            .contains(") Z")
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if !Path::new(&format!("/proc/{pm}")).exists() {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// uid and gid of the `postgres` OS user, from /etc/passwd.
fn postgres_user_ids() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| PgError::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .next()
        .ok_or_else(|| PgError::Cluster {
            detail: "running as root, but there is no `postgres` OS user to run the server as (PostgreSQL refuses root): create it, e.g. `useradd -r postgres`".into(),
        })
}

/// 32 hex digits from the kernel's random source.
fn random_password() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PgError::io("reading /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Single-quotes `s` for /bin/sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn locale_available(name: &str) -> bool {
    process::server_command("locale")
        .arg("-a")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.eq_ignore_ascii_case(name))
        })
        .unwrap_or(false)
}
