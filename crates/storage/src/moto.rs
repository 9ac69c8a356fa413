//! A throwaway local S3 server for tests: `moto_server` from PyPI
//! (`pip install 'moto[server]'`, installed by `scripts/setup.sh`).
//!
//! [`MotoServer::start`] runs it on a free loopback port and stops it (by
//! its pid) when dropped, also when the test panics. When `moto_server` is
//! missing, `start` returns `None` so a test can skip, except under
//! `CI=true`, where it panics: CI must not pass by skipping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Credentials every test client uses (moto accepts any by default).
pub const ACCESS_KEY_ID: &str = "lifeboat-test";
/// Secret paired with [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "lifeboat-test-secret";

/// A running `moto_server`, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Option<Child>,
    port: u16,
}

impl MotoServer {
    /// Start a server on a free port; `None` (skip) when `moto_server` is
    /// not installed and `CI` is not `true`.
    pub fn start() -> Option<Self> {
        Self::spawn(free_port(), false, None).or_else(missing)
    }

    /// A server that checks signatures, with `bucket` created and one IAM
    /// user allowed everything: returns the server and that user's
    /// (access key id, secret). Any other credentials are refused.
    pub fn start_with_auth(bucket: &str) -> Option<(Self, String, String)> {
        // moto serves this many requests before it enforces authentication:
        // the bucket, the user, its policy and its access key.
        let server = match Self::spawn(free_port(), false, Some("4")) {
            Some(s) => s,
            None => return missing(),
        };
        server.create_bucket(bucket);
        let iam = |body: &str| server.post_iam(body);
        iam("Action=CreateUser&UserName=lifeboat&Version=2010-05-08");
        iam("Action=PutUserPolicy&UserName=lifeboat&PolicyName=all&Version=2010-05-08&PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D");
        let xml = iam("Action=CreateAccessKey&UserName=lifeboat&Version=2010-05-08");
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let start = xml.find(&open).map(|i| i + open.len());
            let end = xml.find(&format!("</{t}>"));
            match (start, end) {
                (Some(a), Some(b)) => xml[a..b].to_string(),
                _ => panic!("CreateAccessKey answered without {t}: {xml}"),
            }
        };
        let (id, secret) = (tag("AccessKeyId"), tag("SecretAccessKey"));
        Some((server, id, secret))
    }

    /// Start on `port` (to restart a stopped server on the same address).
    pub fn start_on(port: u16) -> Option<Self> {
        Self::spawn(port, true, None)
    }

    /// Start `moto_server` on `port`. A fresh port (`fixed` false) is
    /// tried again on another when the server exits before it answers
    /// (another process took the port between [`free_port`] and the bind).
    fn spawn(port: u16, fixed: bool, no_auth_count: Option<&str>) -> Option<Self> {
        let mut port = port;
        for _ in 0..5 {
            let mut cmd = Command::new("moto_server");
            if let Some(n) = no_auth_count {
                cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n);
            }
            let child = cmd
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let mut server = Self {
                child: Some(child),
                port,
            };
            if server.wait_ready() {
                return Some(server);
            }
            server.stop();
            if !fixed {
                port = free_port();
            }
        }
        panic!("moto_server did not start: it exited before answering, 5 times");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Create a bucket (an unsigned `PUT /<bucket>`, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {status}"
        );
    }

    /// Stop the server now (kill by pid, then reap).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait until the server answers HTTP on its API path, which does not
    /// count against `INITIAL_NO_AUTH_ACTION_COUNT` (a TCP connect alone can succeed
    /// against nobody: a loopback socket may connect to itself): `false`
    /// when it exited first.
    fn wait_ready(&mut self) -> bool {
        for _ in 0..600 {
            let exited = match self.child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                return false;
            }
            if self
                .try_request("GET", "/moto-api/")
                .is_some_and(|s| s.starts_with("HTTP/1."))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "moto_server did not answer on port {} within 30 s",
            self.port
        );
    }

    /// An IAM query-API call (unsigned, with a credential scope naming the
    /// IAM service so moto routes it there); returns the response.
    fn post_iam(&self, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAINIT/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .expect("write request");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "IAM {body}: {out}");
        out
    }

    /// One HTTP/1.1 request; returns the status line.
    fn request(&self, method: &str, path: &str) -> String {
        self.try_request(method, path)
            .unwrap_or_else(|| panic!("moto_server on port {} does not answer", self.port))
    }

    /// One HTTP/1.1 request; its status line, `None` when nobody answers.
    fn try_request(&self, method: &str, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.lines().next()?.to_string();
        Some(status)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `moto_server` could not be started: skip (`None`), or panic under `CI=true`.
fn missing<T>() -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("moto_server is not installed (CI=true must not skip): run scripts/setup.sh or pip install 'moto[server]'")
    }
    eprintln!("SKIP: moto_server not installed (pip install 'moto[server]')");
    None
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}
