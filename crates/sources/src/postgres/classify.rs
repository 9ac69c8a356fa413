//! Classifying a failed client tool run from its stderr.
//!
//! Tools run with `LC_ALL=C`, so their messages are the English ones matched
//! here; each known failure becomes its own [`PgError`] variant (and exit code).

use super::conn::PgTarget;
use super::error::PgError;

/// Turns a failed tool run (its stderr) into the most specific error we can name.
/// Used for psql here, and by the engine for pg_dump / pg_restore / pg_dumpall.
pub fn classify_failure(tool: &str, target: &PgTarget, status: &str, stderr: &str) -> PgError {
    let lower = stderr.to_ascii_lowercase();
    let address = target.address();
    if lower.contains("connection refused") {
        return PgError::Unreachable {
            address,
            reason: "connection refused".into(),
        };
    }
    if lower.contains("could not translate host name") {
        return PgError::UnknownHost {
            host: quoted_after(stderr, "host name").unwrap_or_else(|| address.clone()),
        };
    }
    if lower.contains("timeout expired") {
        return PgError::Timeout { address };
    }
    if lower.contains("no route to host") || lower.contains("network is unreachable") {
        return PgError::Unreachable {
            address,
            reason: "no route to host".into(),
        };
    }
    if lower.contains("on socket") && lower.contains("no such file or directory") {
        return PgError::Unreachable {
            address,
            reason: "no server socket there".into(),
        };
    }
    let user = || {
        target
            .user()
            .map(str::to_string)
            .unwrap_or_else(|| "(default user)".into())
    };
    if lower.contains("password authentication failed") {
        return PgError::AuthFailed {
            user: quoted_after(stderr, "for user").unwrap_or_else(user),
            detail: "password authentication failed".into(),
        };
    }
    if lower.contains("no password supplied") {
        return PgError::AuthFailed {
            user: user(),
            detail: "the server requires a password and none was given".into(),
        };
    }
    if lower.contains("fatal") && lower.contains("role \"") && lower.contains("does not exist") {
        return PgError::RoleMissing {
            role: quoted_after(stderr, "role").unwrap_or_else(user),
        };
    }
    if lower.contains("database \"") && lower.contains("does not exist") && lower.contains("fatal")
    {
        return PgError::DatabaseMissing {
            database: quoted_after(stderr, "database")
                .or_else(|| target.database().map(str::to_string))
                .unwrap_or_default(),
        };
    }
    if lower.contains("too many connections for role")
        || lower.contains("sorry, too many clients already")
        || lower.contains("remaining connection slots are reserved")
        || lower.contains("too many connections for database")
    {
        let detail = stderr
            .lines()
            .map(str::trim)
            .find(|l| l.to_ascii_lowercase().contains("connection") || l.contains("too many"))
            .unwrap_or(stderr.trim());
        return PgError::TooManyConnections {
            address,
            detail: detail.to_string(),
        };
    }
    // lock_timeout (our sessions), or pg_dump's --lock-wait-timeout (a
    // statement_timeout around its LOCK TABLE).
    if lower.contains("canceling statement due to lock timeout")
        || (lower.contains("canceling statement due to statement timeout")
            && lower.contains("lock table"))
    {
        let detail: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return PgError::LockTimeout {
            detail: format!("{tool}: {}", detail.join(" ")),
        };
    }
    PgError::ToolFailed {
        tool: tool.to_string(),
        status: status.to_string(),
        stderr: stderr.trim().to_string(),
    }
}

/// Turns an error of the in-process client into the same [`PgError`] variants
/// (and exit codes) as a failed tool run: by SQLSTATE where the server sent one,
/// by the kind of I/O error when it never answered, else by the message text.
pub fn classify_client_error(target: &PgTarget, e: &postgres::Error) -> PgError {
    if let Some(db) = e.as_db_error() {
        return classify_db_error(target, db);
    }
    let address = target.address();
    if let Some(tls) = tls_source(e) {
        return PgError::Tls {
            address,
            detail: tls_detail(target, tls),
        };
    }
    let text = message_with_causes(e);
    if text.contains("server does not support TLS") {
        return PgError::Tls {
            address,
            detail: format!(
                "the server does not accept TLS connections but sslmode={} requires TLS: \
                 enable ssl on the server, or use sslmode=prefer",
                target.param("sslmode").unwrap_or("require")
            ),
        };
    }
    if let Some(io) = io_source(e) {
        use std::io::ErrorKind;
        return match io.kind() {
            ErrorKind::TimedOut => PgError::Timeout { address },
            ErrorKind::ConnectionRefused => PgError::Unreachable {
                address,
                reason: "connection refused".into(),
            },
            ErrorKind::NotFound if target.is_socket() => PgError::Unreachable {
                address,
                reason: "no server socket there".into(),
            },
            _ if io.to_string().contains("failed to lookup address") => PgError::UnknownHost {
                host: target.host().unwrap_or_default().to_string(),
            },
            _ => PgError::Unreachable {
                address,
                reason: io.to_string(),
            },
        };
    }
    if text.contains("password missing") {
        return classify_failure("postgres", target, "error", "no password supplied");
    }
    classify_failure("postgres", target, "error", &text)
}

fn classify_db_error(target: &PgTarget, db: &postgres::error::DbError) -> PgError {
    let user = || target.user().unwrap_or("(default user)").to_string();
    let message = db.message();
    match db.code().code() {
        "28000" if message.contains("no pg_hba.conf entry") => PgError::HbaRejected {
            address: target.address(),
            detail: message.to_string(),
        },
        // invalid_password, invalid_authorization_specification
        "28P01" | "28000" if message.contains("role \"") => PgError::RoleMissing {
            role: quoted_after(message, "role").unwrap_or_else(user),
        },
        "28P01" | "28000" => PgError::AuthFailed {
            user: quoted_after(message, "for user").unwrap_or_else(user),
            detail: message
                .split(" for user")
                .next()
                .unwrap_or(message)
                .to_string(),
        },
        // invalid_catalog_name
        "3D000" => PgError::DatabaseMissing {
            database: quoted_after(message, "database")
                .or_else(|| target.database().map(str::to_string))
                .unwrap_or_default(),
        },
        // lock_not_available (lock_timeout), query_canceled on a lock wait
        "55P03" => PgError::LockTimeout {
            detail: format!("postgres: {message}"),
        },
        "57014" if message.contains("lock timeout") => PgError::LockTimeout {
            detail: format!("postgres: {message}"),
        },
        // too_many_connections
        "53300" => PgError::TooManyConnections {
            address: target.address(),
            detail: message.to_string(),
        },
        // insufficient_privilege and the rest: the server's words, like a tool's stderr
        code => PgError::ToolFailed {
            tool: "postgres".into(),
            status: format!("SQLSTATE {code}"),
            stderr: format!("ERROR:  {message}"),
        },
    }
}

/// The I/O error under a client error (connect refused, no socket, timeout).
/// The error's message followed by those of its causes: newer client
/// releases print only the kind ("invalid configuration") and keep the
/// reason ("password missing") in the source.
fn message_with_causes(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        src = s.source();
    }
    text
}

fn io_source(e: &postgres::Error) -> Option<&std::io::Error> {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        src = s.source();
    }
    None
}

/// The rustls error under a client error (a failed handshake or certificate check).
fn tls_source(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        src = s.source();
    }
    None
}

/// What a TLS failure means for the operator, naming the setting to change.
fn tls_detail(target: &PgTarget, e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let host = target.host().unwrap_or_default();
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "the server's certificate is not valid for host {host} (sslmode=verify-full checks \
                 the host name): connect with a host name the certificate names, or use sslmode=verify-ca"
            )
        }
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension,
        ) => "the server's certificate is not signed by a CA in the root certificate file: \
              check sslrootcert (the CA that issued the server's certificate)"
            .to_string(),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired: renew it on the server".to_string()
        }
        other => format!("{other}: check sslmode, sslrootcert, sslcert and sslkey"),
    }
}

/// The first `"quoted"` word after `marker` in `text`.
fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let i = text.find(marker)? + marker.len();
    let rest = &text[i..];
    let start = rest.find('"')? + 1;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_connection_errors() {
        let t = PgTarget::parse("postgres://bob@127.0.0.1:1/db").unwrap();
        let e = classify_failure(
            "psql",
            &t,
            "exit status: 2",
            "psql: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        );
        assert!(matches!(e, PgError::Unreachable { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "could not connect to server at 127.0.0.1:1: connection refused — is PostgreSQL running? check the URL"
        );
        let e = classify_failure(
            "psql",
            &t,
            "exit status: 2",
            "psql: error: connection to server at \"127.0.0.1\", port 1 failed: FATAL:  password authentication failed for user \"bob\"",
        );
        assert!(
            e.to_string()
                .starts_with("password authentication failed for user bob: check the password"),
            "{e}"
        );
        let e = classify_failure(
            "psql",
            &t,
            "exit status: 2",
            "psql: error: connection to server at \"127.0.0.1\", port 1 failed: FATAL:  database \"db\" does not exist",
        );
        assert!(matches!(e, PgError::DatabaseMissing { ref database } if database == "db"));
        let e = classify_failure(
            "psql",
            &t,
            "exit status: 3",
            "ERROR:  relation \"x\" does not exist",
        );
        assert!(matches!(e, PgError::ToolFailed { .. }));
    }
}
