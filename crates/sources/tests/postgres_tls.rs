//! The in-process client over TCP against a real scratch cluster with
//! `ssl = on`, a CA and a server certificate made here with the openssl CLI,
//! and a hostssl-only pg_hba.conf: libpq's sslmode semantics, certificate and
//! host name checks with errors naming what to fix, and passwords from a
//! libpq password file. The cluster stops on drop, also when a check fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_sources::postgres::session::Session;
use lifeboat_sources::postgres::{ClientTools, PgError, PgTarget, ScratchCluster};

fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_TEST_PG_BIN") {
        return p.into();
    }
    ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `<name>.crt`/`<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subj) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN=lifeboat test {name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `server.crt`/`server.key` for `localhost` only, signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster on localhost:`port` with TLS and a pg_hba.conf that admits TCP
/// connections only over TLS (and the local socket for setup).
fn tls_cluster(certs: &Path) -> ScratchCluster {
    let mut c = ScratchCluster::start(&server_bin()).expect("scratch cluster starts");
    for f in ["server.crt", "server.key"] {
        c.write_data_file(f, &std::fs::read_to_string(certs.join(f)).unwrap())
            .unwrap();
    }
    c.write_data_file(
        "pg_hba.conf",
        "local all all scram-sha-256\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         hostssl all all ::1/128 scram-sha-256\n",
    )
    .unwrap();
    c.restart_on_tcp("localhost", free_port(), &[("ssl", "on")])
        .expect("restarts with TLS");
    c
}

fn tcp(c: &ScratchCluster, host: &str, query: &str) -> PgTarget {
    PgTarget::parse(&format!(
        "postgres://postgres@{host}:{}/postgres?{query}",
        c.port()
    ))
    .unwrap()
    .with_password(Some(c.password().to_string()))
}

/// Whether the session's own connection is encrypted (`pg_stat_ssl`).
fn encrypted(c: &ScratchCluster, t: &PgTarget) -> Result<bool, PgError> {
    let mut s = Session::open(c.tools(), t)?;
    let rows = s.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();")?;
    s.close();
    Ok(rows == vec![vec!["t".to_string()]])
}

#[test]
fn sslmodes_follow_libpq_and_certificate_errors_name_the_fix() {
    let certs = tempfile::tempdir().unwrap();
    make_ca(certs.path(), "ca");
    make_ca(certs.path(), "other-ca");
    make_server_cert(certs.path(), "ca");
    let ca = certs.path().join("ca.crt");
    let other = certs.path().join("other-ca.crt");
    let c = tls_cluster(certs.path());

    for mode in ["prefer", "require", "allow"] {
        let t = tcp(&c, "127.0.0.1", &format!("sslmode={mode}"));
        assert!(encrypted(&c, &t).unwrap(), "sslmode={mode} is encrypted");
    }
    // No sslmode: libpq's default, prefer.
    assert!(encrypted(&c, &tcp(&c, "127.0.0.1", "")).unwrap());

    let full = |host: &str, root: &Path| {
        tcp(
            &c,
            host,
            &format!("sslmode=verify-full&sslrootcert={}", root.display()),
        )
    };
    assert!(encrypted(&c, &full("localhost", &ca)).unwrap());
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    assert!(
        encrypted(&c, &tcp(&c, "127.0.0.1", &ca_only)).unwrap(),
        "verify-ca does not check the host name"
    );

    let e = encrypted(&c, &full("localhost", &other)).unwrap_err();
    assert!(matches!(e, PgError::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("sslrootcert"), "{e}");
    // require with a root certificate checks the chain, as libpq does.
    let e = encrypted(
        &c,
        &tcp(
            &c,
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={}", other.display()),
        ),
    )
    .unwrap_err();
    assert!(e.to_string().contains("sslrootcert"), "{e}");

    let e = encrypted(&c, &full("127.0.0.1", &ca)).unwrap_err();
    assert!(matches!(e, PgError::Tls { .. }), "{e:?}");
    assert!(
        e.to_string().contains("not valid for host 127.0.0.1"),
        "{e}"
    );

    let e = encrypted(&c, &tcp(&c, "127.0.0.1", "sslmode=disable")).unwrap_err();
    assert!(matches!(e, PgError::HbaRejected { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("no encryption") && text.contains("sslmode=disable"),
        "{text}"
    );

    let e = encrypted(
        &c,
        &tcp(
            &c,
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
        ),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/root.crt (sslrootcert)"),
        "{e}"
    );
    c.stop().unwrap();
}

#[test]
fn sslrootcert_system_verifies_against_the_system_cas_and_never_falls_back() {
    let certs = tempfile::tempdir().unwrap();
    make_ca(certs.path(), "ca");
    make_server_cert(certs.path(), "ca");
    let c = tls_cluster(certs.path());
    // The test CA is not one the system trusts: libpq (16+) makes
    // sslrootcert=system verify-full, so the connection must fail, not go on
    // unauthenticated (or in plaintext) as sslmode=prefer would.
    for query in [
        "sslrootcert=system",
        "sslrootcert=system&sslmode=verify-full",
    ] {
        let e = encrypted(&c, &tcp(&c, "localhost", query)).unwrap_err();
        assert!(matches!(e, PgError::Tls { .. }), "{query}: {e:?}");
    }
    let e = encrypted(
        &c,
        &tcp(&c, "localhost", "sslrootcert=system&sslmode=require"),
    )
    .unwrap_err();
    assert!(matches!(e, PgError::InvalidUrl { .. }), "{e:?}");
    assert!(e.to_string().contains("verify-full"), "{e}");
    c.stop().unwrap();
}

/// Writes `text` as a password file with `mode`.
fn passfile(dir: &Path, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("pgpass-{mode:o}"));
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn passwords_come_from_a_libpq_password_file() {
    let certs = tempfile::tempdir().unwrap();
    make_ca(certs.path(), "ca");
    make_server_cert(certs.path(), "ca");
    let c = tls_cluster(certs.path());
    let dir = tempfile::tempdir().unwrap();
    // The escaped line and the wildcard user do not match; the next does.
    let text = format!(
        "# lifeboat test\n\
         127.0.0.1:{port}:postgres:post\\:gres:wrong\n\
         other.example:*:*:*:wrong\n\
         127.0.0.1:{port}:*:postgres:{pw}\n",
        port = c.port(),
        pw = c.password().replace('\\', "\\\\").replace(':', "\\:")
    );
    let private = passfile(dir.path(), &text, 0o600);
    let url = |file: &Path| {
        PgTarget::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require&passfile={}",
            c.port(),
            file.display()
        ))
        .unwrap()
    };
    assert!(encrypted(&c, &url(&private)).unwrap());

    // Readable by others: ignored (with a warning), as libpq does.
    let open = passfile(dir.path(), &text, 0o644);
    let e = encrypted(&c, &url(&open)).unwrap_err();
    assert!(matches!(e, PgError::AuthFailed { .. }), "{e:?}");
    c.stop().unwrap();
}
