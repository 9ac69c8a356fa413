//! TLS for the in-process client: libpq's `sslmode` semantics over rustls with
//! the ring crypto provider.
//!
//! - `disable`: plaintext. `allow`: plaintext, and TLS if the server refuses
//!   that. `prefer` (the default): TLS if the server offers it, else (or if
//!   the TLS attempt fails) plaintext.
//! - `require`: TLS without checking the certificate, unless a root
//!   certificate is there (`sslrootcert`, `PGSSLROOTCERT` or
//!   `~/.postgresql/root.crt`), then like `verify-ca` (as libpq does).
//! - `verify-ca`: the chain must lead to a CA in the root certificate file.
//! - `verify-full`: also the host name must be one the certificate names.
//! - `sslrootcert=system`: the system's trusted CAs; as with libpq 16+, the
//!   default sslmode becomes `verify-full` and a weaker one is refused.
//!
//! Settings libpq enforces and this client cannot (`requirepeer`, `sslcrl`,
//! `sslcrldir`, `require_auth`, `channel_binding=require`, `gssencmode=require`) are
//! refused rather than ignored.
//!
//! A client certificate (`sslcert`/`sslkey`, `PGSSLCERT`/`PGSSLKEY`, default
//! `~/.postgresql/postgresql.crt` and `.key`) is presented when its file exists.
//! On a Unix socket there is no TLS, as with libpq.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::classify::classify_client_error;
use super::conn::PgTarget;
use super::error::{PgError, Result};

/// How the certificate of the server is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    Chain,
    ChainAndHost,
}

/// Connects `config` to `target` with the target's `sslmode`.
pub fn connect(target: &PgTarget, mut config: postgres::Config) -> Result<postgres::Client> {
    let plain = |mut c: postgres::Config| {
        c.ssl_mode(SslMode::Disable);
        c.connect(postgres::NoTls)
            .map_err(|e| classify_client_error(target, &e))
    };
    refuse_unsupported(target)?;
    // libpq 16+: `sslrootcert=system` makes verify-full the default and
    // refuses any weaker mode (a system CA proves nothing without the name).
    let system = system_roots(target);
    let mode = target
        .param("sslmode")
        .unwrap_or(if system { "verify-full" } else { "prefer" });
    if system && mode != "verify-full" {
        return Err(PgError::InvalidUrl {
            reason: format!(
                "sslmode={mode} may not be used with sslrootcert=system (as with libpq): \
                 use sslmode=verify-full, or give the path of a CA file in sslrootcert"
            ),
        });
    }
    if target.is_socket() {
        return plain(config);
    }
    let root = root_cert_path(target);
    let have_root = root.as_deref().is_some_and(Path::exists);
    let relaxed = if have_root { Check::Chain } else { Check::None };
    match mode {
        "disable" => plain(config),
        "allow" => plain(config.clone()).or_else(|_| encrypted(target, config, relaxed, true)),
        "prefer" => {
            config.ssl_mode(SslMode::Prefer);
            encrypted(target, config.clone(), relaxed, false).or_else(|_| plain(config))
        }
        "require" => encrypted(target, config, relaxed, true),
        "verify-ca" => encrypted(target, config, Check::Chain, true),
        "verify-full" => encrypted(target, config, Check::ChainAndHost, true),
        other => Err(PgError::InvalidUrl {
            reason: format!(
                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ),
        }),
    }
}

/// One connection attempt over TLS (`SslMode::Require` when `required`).
fn encrypted(
    target: &PgTarget,
    mut config: postgres::Config,
    check: Check,
    required: bool,
) -> Result<postgres::Client> {
    if required {
        config.ssl_mode(SslMode::Require);
    }
    let tls = RustlsConnect {
        config: Arc::new(client_config(target, check)?),
    };
    config
        .connect(tls)
        .map_err(|e| classify_client_error(target, &e))
}

/// Connection settings libpq enforces that this client cannot: refused, so a
/// URL that asks for them never connects without them.
fn refuse_unsupported(target: &PgTarget) -> Result<()> {
    let refuse = |what: &str, fix: &str| {
        Err(PgError::InvalidUrl {
            reason: format!("{what} is not supported by lifeboat's PostgreSQL client: {fix}"),
        })
    };
    let set = |name: &str| target.param(name).is_some_and(|v| !v.is_empty());
    if set("requirepeer") {
        return refuse(
            "requirepeer (checking the user running the server behind the socket)",
            "remove it from the URL and keep the socket directory writable by the server's user only",
        );
    }
    if set("sslcrl") || set("sslcrldir") {
        return refuse(
            "sslcrl/sslcrldir (certificate revocation lists)",
            "remove it from the URL and take the revoked certificate out of service on the server",
        );
    }
    if set("require_auth") {
        return refuse(
            "require_auth",
            "remove it from the URL, and limit the authentication methods in the server's pg_hba.conf",
        );
    }
    if target.param("channel_binding") == Some("require") {
        return refuse(
            "channel_binding=require",
            "use sslmode=verify-full (with sslrootcert) to authenticate the server instead",
        );
    }
    if target.param("gssencmode") == Some("require") {
        return refuse(
            "gssencmode=require (GSSAPI encryption)",
            "use sslmode=verify-full",
        );
    }
    Ok(())
}

/// Whether the root certificates are the system's (`sslrootcert=system`).
fn system_roots(target: &PgTarget) -> bool {
    setting(target, "sslrootcert", "PGSSLROOTCERT").as_deref() == Some("system")
}

/// A libpq setting: the URL parameter, else its environment variable.
fn setting(target: &PgTarget, param: &str, var: &str) -> Option<String> {
    target
        .param(param)
        .map(str::to_string)
        .or_else(|| std::env::var(var).ok())
        .filter(|v| !v.is_empty())
}

/// `~/.postgresql/<name>`, libpq's default location of certificate files.
fn home_file(name: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql").join(name))
}

/// The root certificate file: `sslrootcert`, `PGSSLROOTCERT` or `~/.postgresql/root.crt`.
fn root_cert_path(target: &PgTarget) -> Option<PathBuf> {
    setting(target, "sslrootcert", "PGSSLROOTCERT")
        .map(PathBuf::from)
        .or_else(|| home_file("root.crt"))
}

fn tls_error(target: &PgTarget, detail: String) -> PgError {
    PgError::Tls {
        address: target.address(),
        detail,
    }
}

/// The rustls client configuration for `check`, with a client certificate if one is there.
fn client_config(target: &PgTarget, check: Check) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::None => Arc::new(AcceptAny(provider.clone())),
        Check::Chain | Check::ChainAndHost => {
            let roots = load_roots(target)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_error(target, format!("sslrootcert: {e}")))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(target, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client_cert(target)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_error(target, format!("sslcert/sslkey: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The CAs of the root certificate file.
fn load_roots(target: &PgTarget) -> Result<Arc<RootCertStore>> {
    let Some(path) = root_cert_path(target) else {
        return Err(tls_error(
            target,
            "certificate verification needs a root certificate: set sslrootcert=<CA file> in the URL".into(),
        ));
    };
    if system_roots(target) {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            return Err(tls_error(
                target,
                format!(
                    "sslrootcert=system: no CA certificate found in the system's trust store{}: \
                     install the CA certificates (ca-certificates), or give the path of a CA file",
                    match why.is_empty() {
                        true => String::new(),
                        false => format!(" ({})", why.join("; ")),
                    }
                ),
            ));
        }
        return Ok(Arc::new(roots));
    }
    let shown = path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .and_then(|it| it.collect())
        .map_err(|e| {
            tls_error(
                target,
                format!("could not read root certificate file {shown} (sslrootcert): {e}"),
            )
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(tls_error(
            target,
            format!("root certificate file {shown} (sslrootcert) holds no certificate"),
        ));
    }
    Ok(Arc::new(roots))
}

/// The client certificate chain and key, when the certificate file exists.
type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_cert(target: &PgTarget) -> Result<Option<ClientCert>> {
    let cert = setting(target, "sslcert", "PGSSLCERT")
        .map(PathBuf::from)
        .or_else(|| home_file("postgresql.crt"));
    let Some(cert) = cert.filter(|p| p.exists()) else {
        return Ok(None);
    };
    let key = setting(target, "sslkey", "PGSSLKEY")
        .map(PathBuf::from)
        .or_else(|| home_file("postgresql.key"))
        .unwrap_or_default();
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| tls_error(target, format!("sslcert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| tls_error(target, format!("sslkey {}: {e}", key.display())))?;
    Ok(Some((certs, key)))
}

/// `sslmode=require` without a root certificate: encryption, no authentication
/// of the server (the handshake signatures are still checked).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means
        // the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The client crate's hook for TLS: a rustls configuration shared by connections.
#[derive(Clone)]
struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnectOne> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnectOne {
            config: self.config.clone(),
            name,
        })
    }
}

/// One TLS handshake with the server named `name`.
struct RustlsConnectOne {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

/// An encrypted connection (no channel binding: SCRAM without `-PLUS`).
struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(url: &str) -> PgError {
        let t = PgTarget::parse(url).unwrap();
        let config = t.client_config().unwrap();
        connect(&t, config).err().expect("no connection")
    }

    #[test]
    fn settings_the_client_cannot_enforce_are_refused_not_ignored() {
        for (url, named) in [
            (
                "postgres://u@/db?host=/nonexistent-sock&requirepeer=postgres",
                "requirepeer",
            ),
            (
                "postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslcrl=/etc/crl.pem",
                "sslcrl",
            ),
            (
                "postgres://u@127.0.0.1:1/db?require_auth=scram-sha-256",
                "require_auth",
            ),
            (
                "postgres://u@127.0.0.1:1/db?channel_binding=require",
                "channel_binding=require",
            ),
            (
                "postgres://u@127.0.0.1:1/db?gssencmode=require",
                "gssencmode=require",
            ),
        ] {
            let e = attempt(url);
            assert!(matches!(e, PgError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(e.to_string().contains(named), "{url}: {e}");
        }
        // What the client does honour, or what costs nothing, still connects
        // (here: fails to reach the closed port).
        let e = attempt("postgres://u@127.0.0.1:1/db?channel_binding=prefer&gssencmode=prefer");
        assert!(matches!(e, PgError::Unreachable { .. }), "{e:?}");
    }

    #[test]
    fn sslrootcert_system_means_verify_full_and_refuses_weaker_modes() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let e = attempt(&format!(
                "postgres://u@127.0.0.1:1/db?sslrootcert=system&sslmode={mode}"
            ));
            assert!(matches!(e, PgError::InvalidUrl { .. }), "{mode}: {e:?}");
            assert!(e.to_string().contains("verify-full"), "{mode}: {e}");
        }
        let e = attempt("postgres://u@127.0.0.1:1/db?sslrootcert=system");
        assert!(matches!(e, PgError::Unreachable { .. }), "{e:?}");
    }
}
