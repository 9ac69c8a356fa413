//! ClickHouse's HTTP interface: one blocking client (reqwest, TLS by rustls
//! on the ring provider, the same stack the S3 backend uses).
//!
//! Credentials go in the `X-ClickHouse-User` / `X-ClickHouse-Key` headers,
//! never in the URL, argv or an error message. Bodies stream: [`ChClient::query`]
//! returns a [`ChBody`] reader, and [`ChClient::insert`] sends a reader as
//! the request body, so a partition never sits in memory whole.
//!
//! An exception can come two ways: as a non-200 status with the message
//! as body (and `X-ClickHouse-Exception-Code`), or, once the server has
//! started streaming a 200 response, as text at the end of the body
//! (`Code: 395, e.displayText() = DB::Exception: ...` on old servers,
//! `Code: 395. DB::Exception: ...` on current ones). [`exception_at_end`]
//! finds the latter; the Native reader ([`super::native`]) uses it when the
//! framing breaks, and [`ChClient::query_text`] checks every text answer.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use super::error::{ChError, Result};

/// Server error codes that mean "wrong user or password".
const AUTH_CODES: &[u32] = &[192, 193, 194, 516];

/// A connection to one server as one user.
pub struct ChClient {
    http: reqwest::blocking::Client,
    base: reqwest::Url,
    user: String,
    password: String,
}

impl std::fmt::Debug for ChClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChClient")
            .field("url", &self.url())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A streaming response body.
pub struct ChBody {
    inner: reqwest::blocking::Response,
    url: String,
}

impl Read for ChBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            std::io::Error::other(ChError::Stream {
                url: self.url.clone(),
                detail: e.to_string(),
            })
        })
    }
}

impl ChBody {
    /// The server this body comes from (for messages).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl ChClient {
    /// A client for `url` (`http://host:8123`, `https://host:8443`).
    pub fn new(url: &str, user: &str, password: &str) -> Result<Self> {
        let base = parse_url(url)?;
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls_config())
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .build()
            .map_err(|e| ChError::Connect {
                url: redacted_url(&base),
                detail: e.without_url().to_string(),
            })?;
        Ok(ChClient {
            http,
            base,
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// The server's URL without credentials, for messages.
    pub fn url(&self) -> String {
        redacted_url(&self.base)
    }

    /// Run `sql` with `settings` (URL parameters such as `max_threads=1`);
    /// the body streams.
    pub fn query(&self, sql: &str, settings: &[(&str, &str)]) -> Result<ChBody> {
        self.send(
            reqwest::blocking::Body::from(sql.to_string()),
            settings,
            None,
        )
    }

    /// Run `sql` and read its (small) text answer, checking that it does
    /// not end in an exception.
    pub fn query_text(&self, sql: &str) -> Result<String> {
        self.query_text_with(sql, &[])
    }

    /// [`ChClient::query_text`] with `settings` (URL parameters).
    pub fn query_text_with(&self, sql: &str, settings: &[(&str, &str)]) -> Result<String> {
        let mut body = self.query(sql, settings)?;
        let mut out = Vec::new();
        body.read_to_end(&mut out).map_err(|e| self.io_error(e))?;
        if let Some((code, message)) = exception_at_end(&out) {
            return Err(self.server_error(code, message, true));
        }
        String::from_utf8(out).map_err(|e| ChError::Stream {
            url: self.url(),
            detail: format!("answer is not UTF-8: {e}"),
        })
    }

    /// Run a statement that answers nothing (DDL, `ALTER`).
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.query_text(sql).map(drop)
    }

    /// `INSERT`: `sql` (such as `INSERT INTO db.t FORMAT Native`) goes in
    /// the `query` parameter and `data` streams as the request body.
    pub fn insert(&self, sql: &str, data: impl Read + Send + 'static) -> Result<()> {
        let body = reqwest::blocking::Body::new(data);
        let mut out = Vec::new();
        let mut resp = self.send(body, &[], Some(sql))?;
        resp.read_to_end(&mut out).map_err(|e| self.io_error(e))?;
        match exception_at_end(&out) {
            Some((code, message)) => Err(self.server_error(code, message, true)),
            None => Ok(()),
        }
    }

    /// One POST; non-200 answers become errors.
    fn send(
        &self,
        body: reqwest::blocking::Body,
        settings: &[(&str, &str)],
        query: Option<&str>,
    ) -> Result<ChBody> {
        let mut url = self.base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(q) = query {
                pairs.append_pair("query", q);
            }
            for (k, v) in settings {
                pairs.append_pair(k, v);
            }
        }
        let resp = self
            .http
            .post(url)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body(body)
            .send()
            .map_err(|e| ChError::Connect {
                url: self.url(),
                detail: error_chain(&e.without_url()),
            })?;
        if resp.status().is_success() {
            return Ok(ChBody {
                inner: resp,
                url: self.url(),
            });
        }
        Err(self.failed_response(resp))
    }

    /// A non-200 answer as an error: its code (header or body) and message.
    fn failed_response(&self, resp: reqwest::blocking::Response) -> ChError {
        let status = resp.status();
        let header_code = resp
            .headers()
            .get("X-ClickHouse-Exception-Code")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let mut text = Vec::new();
        let _ = resp.take(64 * 1024).read_to_end(&mut text);
        let (body_code, message) = exception_at_end(&text).unwrap_or_else(|| {
            (
                0,
                format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim()),
            )
        });
        let code = header_code.unwrap_or(body_code);
        self.server_error(code, message, false)
    }

    fn server_error(&self, code: u32, message: String, mid_stream: bool) -> ChError {
        if AUTH_CODES.contains(&code) {
            return ChError::Auth {
                url: self.url(),
                user: self.user.clone(),
                message,
            };
        }
        ChError::Server {
            url: self.url(),
            code,
            during: if mid_stream {
                " in the middle of a 200 response"
            } else {
                ""
            },
            message,
        }
    }

    /// An I/O error from a body: the [`ChError`] inside, or a stream error.
    fn io_error(&self, e: std::io::Error) -> ChError {
        into_ch_error(e, &self.url())
    }
}

/// The [`ChError`] an I/O error carries, or a stream error naming `url`.
pub fn into_ch_error(e: std::io::Error, url: &str) -> ChError {
    if e.get_ref().is_some_and(|r| r.is::<ChError>()) {
        if let Ok(inner) = e.into_inner().expect("checked").downcast::<ChError>() {
            return *inner;
        }
        unreachable!("checked the type");
    }
    ChError::Stream {
        url: url.to_string(),
        detail: e.to_string(),
    }
}

/// The exception a body ends with: (code, message). Looks at the last
/// 64 KiB for the last `Code: NNN` that is followed by `DB::Exception`.
pub fn exception_at_end(body: &[u8]) -> Option<(u32, String)> {
    let tail = &body[body.len().saturating_sub(64 * 1024)..];
    let at = memchr::memmem::rfind(tail, b"Code: ")?;
    let rest = &tail[at..];
    memchr::memmem::find(rest, b"DB::Exception")?;
    let digits: String = rest[6..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    let code = digits.parse().ok()?;
    let message = String::from_utf8_lossy(rest).trim().to_string();
    Some((code, message))
}

/// Parse and check the configured URL.
fn parse_url(url: &str) -> Result<reqwest::Url> {
    let bad = |detail: &str| ChError::BadUrl {
        url: url.split('@').next_back().unwrap_or("").to_string(),
        detail: detail.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; set user and password (env:/file:) in the source",
        ));
    }
    if parsed.host().is_none() {
        return Err(bad("no host"));
    }
    Ok(parsed)
}

/// `scheme://host:port/path` without credentials or query.
fn redacted_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string().trim_end_matches('/').to_string()
}

/// The transport error with its causes (reqwest's top message alone is
/// often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// rustls on ring with the system's root certificates.
fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_old_and_new_exception_trailers() {
        let old = b"\x01\x02data Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception\n";
        assert_eq!(exception_at_end(old).unwrap().0, 395);
        let new = b"rows...Code: 395. DB::Exception: Value passed to 'throwIf' function is non-zero. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 24.8.1.1)\n";
        let (code, msg) = exception_at_end(new).unwrap();
        assert_eq!(code, 395);
        assert!(msg.contains("FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"));
        assert!(exception_at_end(b"plain rows\n1\t2\n").is_none());
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        let e = parse_url("http://default:hunter2@127.0.0.1:8123").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(parse_url("ftp://host").is_err());
        assert!(parse_url("http://127.0.0.1:8123").is_ok());
    }
}
