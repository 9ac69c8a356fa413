//! The error type of the ClickHouse source.
//!
//! Messages name the server (its URL without credentials), what failed and
//! what to do; they never hold a password (credentials travel in request
//! headers, never in the URL, and reqwest errors are stripped of their URL).

/// What can go wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum ChError {
    /// The URL in the configuration is not a usable `http(s)://host:port`.
    #[error("ClickHouse URL {url:?} is not valid: {detail} (expected http://host:8123 or https://host:8443)")]
    BadUrl {
        /// The URL as given (without credentials).
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The server could not be reached (refused, DNS, TLS, timeout).
    #[error(
        "cannot reach ClickHouse at {url}: {detail} (check the url and that the HTTP port is open)"
    )]
    Connect {
        /// The server.
        url: String,
        /// The transport's message.
        detail: String,
    },
    /// The server refused the user or password (codes 192, 193, 194, 516).
    #[error("ClickHouse at {url} refused user {user:?}: {message} (check the source's user and password)")]
    Auth {
        /// The server.
        url: String,
        /// The user name tried.
        user: String,
        /// The server's message.
        message: String,
    },
    /// The server answered with an exception, before or after a 200 status.
    #[error("ClickHouse at {url} failed (code {code}){during}: {message}")]
    Server {
        /// The server.
        url: String,
        /// `DB::Exception` code, 0 when the server sent none.
        code: u32,
        /// " in the middle of a 200 response" when the exception ended a streamed body.
        during: &'static str,
        /// The server's message.
        message: String,
    },
    /// The body broke off: the connection closed or failed mid-stream.
    #[error("reading from ClickHouse at {url} failed mid-stream: {detail}")]
    Stream {
        /// The server.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A `FORMAT Native` body that is not whole, valid Native.
    #[error("ClickHouse at {url} sent invalid Native data: {detail}; nothing is stored from a truncated or malformed export")]
    Native {
        /// The server.
        url: String,
        /// Where and how the framing broke.
        detail: String,
    },
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, ChError>;

impl ChError {
    /// Stable code for `--json` (`detail`): `ch_bad_url`, `ch_unreachable`,
    /// `ch_auth`, `ch_server`, `ch_stream`, `ch_native`.
    pub fn code(&self) -> &'static str {
        match self {
            ChError::BadUrl { .. } => "ch_bad_url",
            ChError::Connect { .. } => "ch_unreachable",
            ChError::Auth { .. } => "ch_auth",
            ChError::Server { .. } => "ch_server",
            ChError::Stream { .. } => "ch_stream",
            ChError::Native { .. } => "ch_native",
        }
    }
}
