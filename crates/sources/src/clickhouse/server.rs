//! A throwaway private ClickHouse server for tests and restore drills.
//!
//! [`TestServer::start`] writes its own `config.xml` and `users.xml` into a
//! temporary directory (HTTP and TCP ports from a free-port probe, data,
//! tmp and log paths under that directory, listening on 127.0.0.1 only, the
//! `default` user with [`PASSWORD`]), starts `clickhouse-server` (Debian's
//! package, installed by `scripts/setup.sh`) as the unprivileged
//! `clickhouse` user when running as root, waits until `SELECT 1` answers
//! over HTTP, and kills the server by its pid when dropped, also when the
//! test panics. A missing server binary makes `start` return `None` (skip),
//! except under `CI=true`, where it panics: CI must not pass by skipping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `default` user's password on every test server.
pub const PASSWORD: &str = "lifeboat-test-pw";

/// Where Debian's package puts the server.
const SERVER_PATHS: &[&str] = &["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"];

/// A running private `clickhouse-server`, killed on drop.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    http_port: u16,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Start a server; `None` (skip) when no server binary is installed and
    /// `CI` is not `true`.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binary() else {
            return missing();
        };
        for _ in 0..5 {
            let mut server = Self::spawn(&bin);
            if server.wait_ready() {
                return Some(server);
            }
            let log = server.error_log();
            server.stop();
            eprintln!("clickhouse-server exited before answering; trying other ports: {log}");
        }
        panic!("clickhouse-server did not start: it exited before answering, 5 times");
    }

    /// Write the configuration into a fresh directory and start the server.
    fn spawn(bin: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-ch-")
            .tempdir()
            .expect("create a temporary directory");
        let (http_port, tcp_port) = (free_port(), free_port());
        write_config(dir.path(), http_port, tcp_port);
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config-file={}",
            dir.path().join("config.xml").display()
        ))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some((uid, gid)) = unprivileged_user() {
            chown_tree(dir.path(), uid, gid);
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("spawn clickhouse-server");
        TestServer {
            child: Some(child),
            http_port,
            dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The server's own directory (config, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop the server now (kill by pid, then reap).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run one statement over HTTP with the test password; the body, or a
    /// panic naming the statement and the server's answer.
    pub fn sql(&self, sql: &str) -> String {
        match self.try_post(sql) {
            Some((200, body)) => body,
            other => panic!("ClickHouse {sql:?}: {other:?}"),
        }
    }

    /// Wait until `SELECT 1` answers; `false` when the server exited first.
    fn wait_ready(&mut self) -> bool {
        for _ in 0..1200 {
            let exited = match self.child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                return false;
            }
            if let Some((200, body)) = self.try_post("SELECT 1") {
                if body.trim() == "1" {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "clickhouse-server did not answer SELECT 1 on port {} within 60 s: {}",
            self.http_port,
            self.error_log()
        );
    }

    /// The tail of the server's error log, for failure messages.
    fn error_log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("log/err.log")).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        text[text.floor_char_boundary_compat(start)..].to_string()
    }

    /// One HTTP/1.0 POST of `sql`: (status, body), `None` when nobody answers.
    fn try_post(&self, sql: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
        write!(
            s,
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nX-ClickHouse-User: default\r\nX-ClickHouse-Key: {PASSWORD}\r\nContent-Length: {}\r\n\r\n{sql}",
            sql.len()
        )
        .ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `str::floor_char_boundary` for the MSRV.
trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The installed server binary, if any.
fn server_binary() -> Option<PathBuf> {
    SERVER_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The `clickhouse` user's ids when we run as root (the server refuses to
/// run as root on some versions, and should not anyway).
fn unprivileged_user() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("clickhouse:"))
        .unwrap_or_else(|| panic!("running as root and there is no clickhouse user to run the server as: run scripts/setup.sh"));
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Give the server's directory to the user it runs as.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    for entry in ["", "data", "tmp", "log", "user_files", "format_schemas"] {
        let p = dir.join(entry);
        std::os::unix::fs::chown(&p, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    }
}

/// Write `config.xml` and `users.xml` (and the directories they name).
fn write_config(dir: &Path, http_port: u16, tcp_port: u16) {
    for sub in ["data", "tmp", "log", "user_files", "format_schemas"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create server directory");
    }
    let d = dir.display();
    let config = format!(
        r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/err.log</errorlog><console>0</console></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <uncompressed_cache_size>8589934</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
"#
    );
    let users = format!(
        r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles>
  <users><default><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#
    );
    std::fs::write(dir.join("config.xml"), config).expect("write config.xml");
    std::fs::write(dir.join("users.xml"), users).expect("write users.xml");
}

/// No server binary: skip (`None`), or panic under `CI=true`.
fn missing<T>() -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("clickhouse-server is not installed (CI=true must not skip): run scripts/setup.sh or apt-get install clickhouse-server")
    }
    eprintln!("SKIP: clickhouse-server not installed (apt-get install clickhouse-server)");
    None
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}
