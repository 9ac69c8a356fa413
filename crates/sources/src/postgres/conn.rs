//! Connection targets: parse a `postgres://` URL and hand it to client tools through
//! the environment, never through argv; the password through an unlinked
//! password file (`PGPASSFILE`, see `crate::process::password_file`), never
//! through the environment.
//!
//! Parsing follows libpq's URI rules (section "Connection URIs" of the libpq
//! documentation): `postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&...]`,
//! percent-decoding in every part, IPv6 hosts in brackets, and a Unix socket
//! directory either percent-encoded as the host or given as `?host=/path`.
//! A part that is missing is left unset, and because [`PgTarget::apply_env`] removes
//! inherited `PG*` variables, libpq then applies its compiled-in defaults (socket
//! directory, port 5432, OS user name, database = user name), exactly as it would
//! for the URL alone.

use std::collections::BTreeMap;
use std::fmt;
use std::process::Command;

use super::error::{PgError, Result};

/// Default port libpq uses when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// Port of Supabase's (and PgBouncer-style) transaction pooler.
pub const TRANSACTION_POOLER_PORT: u16 = 6543;

/// Environment variables libpq reads that would change which server, database or
/// session settings a tool uses; all are removed before the target's own are set.
/// (Certificate and passfile locations are left alone: they are the operator's
/// deliberate client configuration, not a competing target.)
const CLEARED_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGREQUIRESSL",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGDATESTYLE",
    "PGTZ",
    "PGGEQO",
    "PGCHANNELBINDING",
    "PGREQUIREAUTH",
    "PGGSSENCMODE",
    "PGSSLNEGOTIATION",
];

/// Query parameters accepted in a URL and the environment variable each becomes.
const PARAMS: &[(&str, &str)] = &[
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslsni", "PGSSLSNI"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("requirepeer", "PGREQUIREPEER"),
    ("require_auth", "PGREQUIREAUTH"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("gssencmode", "PGGSSENCMODE"),
    ("krbsrvname", "PGKRBSRVNAME"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("options", "PGOPTIONS"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("hostaddr", "PGHOSTADDR"),
    ("passfile", "PGPASSFILE"),
    ("client_encoding", "PGCLIENTENCODING"),
];

/// Application name reported to the server when the URL does not set one.
pub const DEFAULT_APPLICATION_NAME: &str = "lifeboat";

/// Connect timeout (seconds) used when the URL does not set one, so an unreachable
/// host fails in seconds instead of hanging a scheduled backup.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "10";

/// Where and as whom to connect. The password is held apart from everything that
/// is displayed or put on a command line.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PgTarget {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    params: BTreeMap<String, String>,
}

impl PgTarget {
    /// Parses a `postgres://` or `postgresql://` URL.
    ///
    /// When a `/`, `?` or `#` comes before the URL's last `@` (a password
    /// holding one of them unencoded cuts the userinfo short), an error does
    /// not quote any part of the URL: it could be a piece of the password.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| invalid("it must start with postgres:// or postgresql://"))?;
        let userinfo_cut = rest
            .find(['/', '?', '#'])
            .is_some_and(|i| rest[i..].contains('@') && !rest[..i].contains('@'));
        Self::parse_after_scheme(rest).map_err(|e| match e {
            PgError::InvalidUrl { .. } if userinfo_cut => invalid(
                "it does not parse (the text is not shown: it may hold the password); \
                 a '/', '?' or '#' in the user name or password must be percent-encoded \
                 as %2F, %3F or %23",
            ),
            other => other,
        })
    }

    fn parse_after_scheme(rest: &str) -> Result<Self> {
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        if main.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(invalid("fragments (#...) are not allowed"));
        }
        let (authority, path) = match main.find('/') {
            Some(i) => (&main[..i], Some(&main[i + 1..])),
            None => (main, None),
        };
        let mut t = PgTarget::default();
        // userinfo: the last '@' separates it from the host (passwords may contain '@' when encoded).
        let hostport = match authority.rfind('@') {
            Some(i) => {
                let userinfo = &authority[..i];
                let (user, pass) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                t.user = non_empty(percent_decode(user)?);
                t.password = match pass {
                    Some(p) => Some(percent_decode(p)?),
                    None => None,
                };
                &authority[i + 1..]
            }
            None => authority,
        };
        if hostport.contains(',') {
            return Err(invalid(
                "several hosts in one URL are not supported: give one host",
            ));
        }
        let (host, port) = split_host_port(hostport)?;
        t.host = non_empty(host);
        t.port = port;
        if let Some(p) = path {
            t.dbname = non_empty(percent_decode(p)?);
        }
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid(&format!("query parameter {pair:?} has no value")))?;
                let k = percent_decode(k)?;
                let v = percent_decode(v)?;
                match k.as_str() {
                    "host" => t.host = non_empty(v),
                    "port" => t.port = Some(parse_port(&v)?),
                    "user" => t.user = non_empty(v),
                    "password" => t.password = Some(v),
                    "dbname" => t.dbname = non_empty(v),
                    _ if PARAMS.iter().any(|(name, _)| *name == k) => {
                        t.params.insert(k, v);
                    }
                    _ => {
                        return Err(invalid(&format!("unknown query parameter {k:?}")));
                    }
                }
            }
        }
        Ok(t)
    }

    /// A target from parts, for callers that already know them (e.g. scratch clusters).
    pub fn from_parts(host: &str, port: u16, user: &str, dbname: &str) -> Self {
        PgTarget {
            host: Some(host.to_string()),
            port: Some(port),
            user: Some(user.to_string()),
            password: None,
            dbname: Some(dbname.to_string()),
            params: BTreeMap::new(),
        }
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, db: &str) -> PgTarget {
        let mut t = self.clone();
        t.dbname = Some(db.to_string());
        t
    }

    /// The same target with a password (taken from a secret store, not from argv).
    pub fn with_password(&self, password: Option<String>) -> PgTarget {
        let mut t = self.clone();
        t.password = password;
        t
    }

    /// Host name, IP address or socket directory, if the URL gave one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Port, if the URL gave one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Port libpq will use.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// User name, if the URL gave one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Database name, if the URL gave one.
    pub fn database(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// Whether a password is set (its value is never exposed except to the child env).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// A query parameter such as `sslmode`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Whether the host is a Unix socket directory.
    pub fn is_socket(&self) -> bool {
        self.host.as_deref().is_none_or(|h| h.starts_with('/'))
    }

    /// `host:port` (or the socket directory) for messages.
    pub fn address(&self) -> String {
        match self.host.as_deref() {
            Some(h) if h.starts_with('/') => {
                format!("{h}/.s.PGSQL.{}", self.effective_port())
            }
            Some(h) if h.contains(':') => format!("[{h}]:{}", self.effective_port()),
            Some(h) => format!("{h}:{}", self.effective_port()),
            None => format!("local socket (port {})", self.effective_port()),
        }
    }

    /// Sets libpq environment variables for this target on `cmd`, after removing
    /// inherited ones that could point the tool somewhere else. `cmd` should come
    /// from `crate::process::command` (empty environment plus an allowlist).
    ///
    /// The password goes into an unlinked 0600 password file (`PGPASSFILE`), not
    /// into `PGPASSWORD`: a child's environment is visible in `/proc/<pid>/environ`
    /// and `ps e`, and is inherited by whatever the child starts. Only a password
    /// libpq's file format cannot hold (a line break), or a failure to create the
    /// file, falls back to `PGPASSWORD`.
    ///
    /// `PGAPPNAME` defaults to `lifeboat` and `PGCONNECT_TIMEOUT` to 10 seconds.
    pub fn apply_env(&self, cmd: &mut Command) {
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        for (param, var) in PARAMS {
            if self.params.contains_key(*param) {
                cmd.env_remove(var);
            }
        }
        if let Some(h) = &self.host {
            cmd.env("PGHOST", h);
        }
        if let Some(p) = self.port {
            cmd.env("PGPORT", p.to_string());
        }
        if let Some(u) = &self.user {
            cmd.env("PGUSER", u);
        }
        if let Some(d) = &self.dbname {
            cmd.env("PGDATABASE", d);
        }
        for (param, var) in PARAMS {
            if let Some(v) = self.params.get(*param) {
                cmd.env(var, v);
            }
        }
        // After the parameters: a password in the URL wins over a `passfile` one,
        // as it would with libpq.
        if let Some(pw) = &self.password {
            set_password(cmd, pw);
        }
        if !self.params.contains_key("application_name") {
            cmd.env("PGAPPNAME", DEFAULT_APPLICATION_NAME);
        }
        if !self.params.contains_key("connect_timeout") {
            cmd.env("PGCONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT);
        }
    }

    /// Whether this looks like a transaction-mode connection pooler (Supabase's
    /// Supavisor/PgBouncer on port 6543). pg_dump needs a session: use the direct
    /// connection (port 5432) or the session pooler instead.
    pub fn looks_like_transaction_pooler(&self) -> bool {
        // Supavisor (`*.pooler.supabase.com`) and PgBouncer deployments alike use
        // 6543 for transaction mode and 5432 for session mode; the port decides.
        self.effective_port() == TRANSACTION_POOLER_PORT
    }

    /// Whether this looks like a Supabase-hosted database (direct or pooled).
    pub fn looks_like_supabase(&self) -> bool {
        self.host.as_deref().is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            h.ends_with(".supabase.co") || h.ends_with("pooler.supabase.com")
        })
    }
}

/// libpq's compiled-in socket directory on Debian/Ubuntu, used when a URL names no host.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

impl PgTarget {
    /// The in-process client's configuration for this target, with the password
    /// set in-process (never on argv or in an environment): the URL's, else
    /// the matching line of the password file libpq would read
    /// ([`super::pgpass`]). TLS (`sslmode`) is applied when connecting
    /// ([`super::tls::connect`]).
    pub fn client_config(&self) -> Result<postgres::Config> {
        use postgres::config::SslMode;
        let mut c = postgres::Config::new();
        c.ssl_mode(SslMode::Disable);
        match self.host.as_deref() {
            Some(h) if h.starts_with('/') => c.host_path(h),
            Some(h) => c.host(h),
            None => c.host_path(DEFAULT_SOCKET_DIR),
        };
        if let Some(a) = self.param("hostaddr") {
            let ip = a
                .parse()
                .map_err(|_| invalid(&format!("hostaddr {a:?} is not an IP address")))?;
            c.hostaddr(ip);
        }
        c.port(self.effective_port());
        c.user(&self.user.clone().unwrap_or_else(os_user));
        if let Some(d) = &self.dbname {
            c.dbname(d);
        }
        if let Some(p) = self.password.clone().or_else(|| self.password_from_file()) {
            c.password(p);
        }
        if let Some(o) = self.param("options") {
            c.options(o);
        }
        c.application_name(
            self.param("application_name")
                .unwrap_or(DEFAULT_APPLICATION_NAME),
        );
        let secs = self
            .param("connect_timeout")
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        match secs.trim().parse::<u64>() {
            // libpq: 0 (or negative) means wait indefinitely; under 2 counts as 2.
            Ok(0) => {}
            Ok(n) => {
                c.connect_timeout(std::time::Duration::from_secs(n.max(2)));
            }
            Err(_) => {
                return Err(invalid(&format!(
                    "connect_timeout {secs:?} is not a number"
                )))
            }
        }
        Ok(c)
    }

    /// The password for this target from `passfile`, `PGPASSFILE` or `~/.pgpass`.
    fn password_from_file(&self) -> Option<String> {
        let path = super::pgpass::passfile_path(self.param("passfile"))?;
        let user = self.user.clone().unwrap_or_else(os_user);
        let host = match self.host.as_deref() {
            None | Some("" | DEFAULT_SOCKET_DIR) => "localhost".to_string(),
            Some(h) => h.to_string(),
        };
        let key = super::pgpass::PassKey {
            host,
            port: self.effective_port().to_string(),
            database: self.dbname.clone().unwrap_or_else(|| user.clone()),
            user,
        };
        super::pgpass::lookup(&path, &key)
    }
}

/// The OS user name, libpq's default role name.
fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "postgres".into())
}

impl fmt::Display for PgTarget {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(u) = &self.user {
            f.write_str(&percent_encode(u))?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        let mut query: Vec<(String, String)> = Vec::new();
        match self.host.as_deref() {
            Some(h) if h.starts_with('/') => query.push(("host".into(), h.to_string())),
            Some(h) if h.contains(':') => write!(f, "[{h}]")?,
            Some(h) => f.write_str(&percent_encode(h))?,
            None => {}
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(d) = &self.dbname {
            write!(f, "/{}", percent_encode(d))?;
        }
        for (k, v) in &self.params {
            query.push((k.clone(), v.clone()));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{k}={}", percent_encode_query(v))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

impl std::str::FromStr for PgTarget {
    type Err = PgError;
    fn from_str(s: &str) -> Result<Self> {
        PgTarget::parse(s)
    }
}

fn set_password(cmd: &mut Command, password: &str) {
    match crate::process::password_file(password) {
        Ok(Some(path)) => {
            cmd.env("PGPASSFILE", path);
        }
        _ => {
            cmd.env("PGPASSWORD", password);
        }
    }
}

fn invalid(reason: &str) -> PgError {
    PgError::InvalidUrl {
        reason: reason.to_string(),
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn parse_port(s: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(invalid(&format!(
            "port {s:?} is not a number from 1 to 65535"
        ))),
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| invalid("IPv6 address is missing its closing ']'"))?;
        let host = rest[..end].to_string();
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some(parse_port(p)?),
            Some(_) => None,
            None if after.is_empty() => None,
            None => return Err(invalid("unexpected text after IPv6 address")),
        };
        return Ok((host, port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => {
            let port = if p.is_empty() {
                None
            } else {
                Some(parse_port(p)?)
            };
            Ok((percent_decode(h)?, port))
        }
        None => Ok((percent_decode(hostport)?, None)),
    }
}

/// Decodes `%XX` escapes (UTF-8). `+` is kept as is, as libpq does.
pub fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("invalid percent-encoded sequence"))?;
            if hex == 0 {
                return Err(invalid("forbidden value %00 in percent-encoded value"));
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("percent-encoded value is not UTF-8"))
}

fn percent_encode_with(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    percent_encode_with(s, |b| matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn percent_encode_query(s: &str) -> String {
    percent_encode_with(s, |b| matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command) -> BTreeMap<String, Option<String>> {
        cmd.get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn full_url() {
        let t =
            PgTarget::parse("postgres://alice:s3cr%40t@db.example.com:6432/app?sslmode=require")
                .unwrap();
        assert_eq!(t.user(), Some("alice"));
        assert_eq!(t.password.as_deref(), Some("s3cr@t"));
        assert_eq!(t.host(), Some("db.example.com"));
        assert_eq!(t.port(), Some(6432));
        assert_eq!(t.database(), Some("app"));
        assert_eq!(t.param("sslmode"), Some("require"));
    }

    #[test]
    fn postgresql_scheme_and_defaults() {
        let t = PgTarget::parse("postgresql://").unwrap();
        assert_eq!(t, PgTarget::default());
        assert_eq!(t.effective_port(), 5432);
        let t = PgTarget::parse("postgresql://localhost").unwrap();
        assert_eq!(t.host(), Some("localhost"));
        assert_eq!(t.port(), None);
        assert_eq!(t.user(), None);
        assert_eq!(t.database(), None);
    }

    #[test]
    fn ipv6_host() {
        let t = PgTarget::parse("postgres://u@[::1]:5433/db").unwrap();
        assert_eq!(t.host(), Some("::1"));
        assert_eq!(t.port(), Some(5433));
        assert_eq!(t.to_string(), "postgres://u@[::1]:5433/db");
        let t = PgTarget::parse("postgres://[2001:db8::1]/db").unwrap();
        assert_eq!(t.host(), Some("2001:db8::1"));
        assert_eq!(t.port(), None);
    }

    #[test]
    fn socket_directory_host() {
        let t = PgTarget::parse("postgres://postgres@/db?host=/var/run/postgresql").unwrap();
        assert_eq!(t.host(), Some("/var/run/postgresql"));
        assert!(t.is_socket());
        let t = PgTarget::parse("postgres://%2Ftmp%2Fsock:5444/db").unwrap();
        assert_eq!(t.host(), Some("/tmp/sock"));
        assert_eq!(t.port(), Some(5444));
        assert_eq!(t.address(), "/tmp/sock/.s.PGSQL.5444");
    }

    #[test]
    fn percent_decoding_everywhere() {
        let t = PgTarget::parse("postgres://us%20er:p%3Aw%2Fd@h/my%20db").unwrap();
        assert_eq!(t.user(), Some("us er"));
        assert_eq!(t.password.as_deref(), Some("p:w/d"));
        assert_eq!(t.database(), Some("my db"));
        // A raw '@' in the password: the last '@' ends the userinfo.
        let t = PgTarget::parse("postgres://u:a@b@h/d").unwrap();
        assert_eq!(t.password.as_deref(), Some("a@b"));
        assert_eq!(t.host(), Some("h"));
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "mysql://x",
            "postgres://h:notaport/db",
            "postgres://h:70000/db",
            "postgres://h/db?bogus=1",
            "postgres://h/db?sslmode",
            "postgres://h1,h2/db",
            "postgres://[::1/db",
            "postgres://h/d%zz",
        ] {
            assert!(PgTarget::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn a_password_cut_short_by_an_unencoded_separator_is_not_echoed() {
        for (bad, secret) in [
            ("postgres://alice:s3cr3t/x@db.example/app", "s3cr3t"),
            ("postgres://alice:pa?ssw0rd@db.example/app", "ssw0rd"),
            ("postgres://alice:pa#ssw0rd@db.example/app", "ssw0rd"),
        ] {
            let e = PgTarget::parse(bad).unwrap_err().to_string();
            assert!(!e.contains(secret), "{bad}: {e}");
            assert!(e.contains("%2F"), "{bad}: the fix is named: {e}");
        }
        // Without an '@' after the cut the value is still quoted (a port typo).
        let e = PgTarget::parse("postgres://h:54x2/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("54x2"), "{e}");
        // A user name with '@' in the query is no reason to fail.
        let t = PgTarget::parse("postgres://h:5432/db?user=me@srv").unwrap();
        assert_eq!(t.user(), Some("me@srv"));
    }

    #[test]
    fn display_and_debug_redact_password() {
        let t = PgTarget::parse("postgres://alice:hunter2@h:5432/db?sslmode=verify-full").unwrap();
        let shown = t.to_string();
        assert_eq!(shown, "postgres://alice:***@h:5432/db?sslmode=verify-full");
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn env_carries_password_and_clears_inherited() {
        let t = PgTarget::parse("postgres://alice:hunter2@h:5000/db?sslmode=require").unwrap();
        let mut cmd = Command::new("true");
        t.apply_env(&mut cmd);
        let env = env_of(&cmd);
        assert_eq!(
            env.get("PGPASSWORD").cloned().flatten(),
            None,
            "the password is not in the environment"
        );
        let passfile = env["PGPASSFILE"].clone().expect("a password file");
        assert_eq!(
            std::fs::read_to_string(passfile).unwrap(),
            "*:*:*:*:hunter2\n"
        );
        assert_eq!(env["PGHOST"].as_deref(), Some("h"));
        assert_eq!(env["PGPORT"].as_deref(), Some("5000"));
        assert_eq!(env["PGUSER"].as_deref(), Some("alice"));
        assert_eq!(env["PGDATABASE"].as_deref(), Some("db"));
        assert_eq!(env["PGSSLMODE"].as_deref(), Some("require"));
        assert_eq!(env["PGAPPNAME"].as_deref(), Some("lifeboat"));
        assert_eq!(env["PGSERVICE"], None, "inherited PGSERVICE is removed");
        assert!(cmd.get_args().next().is_none(), "nothing on argv");
        // Without a password, an inherited PGPASSWORD must not leak in.
        let mut cmd = Command::new("true");
        PgTarget::parse("postgres://h/db")
            .unwrap()
            .apply_env(&mut cmd);
        assert_eq!(env_of(&cmd)["PGPASSWORD"], None);
        assert_eq!(env_of(&cmd).get("PGPASSFILE"), None);
    }

    #[test]
    fn client_config_carries_the_target() {
        let t = PgTarget::parse(
            "postgres://alice:s%40cret@db.example:6000/app?options=-c%20x%3D1&application_name=job&connect_timeout=3",
        )
        .unwrap();
        let c = t.client_config().unwrap();
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_password(), Some(&b"s@cret"[..]));
        assert_eq!(c.get_dbname(), Some("app"));
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_options(), Some("-c x=1"));
        assert_eq!(c.get_application_name(), Some("job"));
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        let d = PgTarget::parse("postgres://u@h/d?passfile=/nonexistent").unwrap();
        let c = d.client_config().unwrap();
        assert_eq!(c.get_application_name(), Some(DEFAULT_APPLICATION_NAME));
        assert_eq!(c.get_password(), None);
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(10))
        );
    }

    #[test]
    fn with_database_keeps_the_rest() {
        let t = PgTarget::parse("postgres://a:b@h:1/x").unwrap();
        let u = t.with_database("y");
        assert_eq!(u.database(), Some("y"));
        assert_eq!(u.host(), Some("h"));
        assert!(u.has_password());
    }

    #[test]
    fn transaction_pooler_detection() {
        let pooled =
            PgTarget::parse("postgres://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")
                .unwrap();
        assert!(pooled.looks_like_transaction_pooler());
        assert!(pooled.looks_like_supabase());
        let session =
            PgTarget::parse("postgres://u:p@aws-0-eu-central-1.pooler.supabase.com:5432/postgres")
                .unwrap();
        assert!(!session.looks_like_transaction_pooler());
        assert!(PgTarget::parse("postgres://h:6543/d")
            .unwrap()
            .looks_like_transaction_pooler());
        assert!(!PgTarget::parse("postgres://h/d")
            .unwrap()
            .looks_like_transaction_pooler());
    }
}
