//! TLS to PostgreSQL, as the database URL's `sslmode` asks (libpq's
//! meanings, but for the default), through tokio-postgres's rustls
//! connector:
//!
//! | `sslmode`          | encrypted            | server certificate checked                    |
//! |--------------------|----------------------|-----------------------------------------------|
//! | none, `disable`, `allow` | no             | -                                             |
//! | `prefer`           | if the server offers | against `NINAIVALAIGAL_DATABASE_CA` when set  |
//! | `require`          | yes                  | against `NINAIVALAIGAL_DATABASE_CA` when set  |
//! | `verify-ca`        | yes                  | chain (the CA, else the system's roots)       |
//! | `verify-full`      | yes                  | chain and host name                           |
//!
//! Without `sslmode` the connection is plaintext, as it always was here
//! (libpq would try TLS first): TLS is used when the URL asks for it, and a
//! plaintext connection to another machine is logged as a warning.
//!
//! tokio-postgres knows only `disable`/`prefer`/`require`, so the URL it is
//! given carries `require` in place of the `verify-*` modes; the checks of
//! those are the rustls verifier's.

use std::{path::Path, str::FromStr, sync::Arc};

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DatabaseUrl;
use crate::tls::{provider, read_roots};

const CA_SETTING: &str = "NINAIVALAIGAL_DATABASE_CA";

/// A URL's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No `sslmode`, `disable` or `allow`: plaintext.
    Disable,
    /// `prefer`: TLS if the server offers it.
    Prefer,
    /// `require`: TLS always.
    Require,
    /// `verify-ca`: TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate names the host.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(mode: &str) -> Result<Self, Self::Err> {
        Ok(match mode {
            "disable" | "allow" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

impl SslMode {
    /// The `sslmode` of `url`'s query; plaintext when absent.
    pub fn of_url(url: &str) -> Result<Self, String> {
        query_pairs(url)
            .find(|(key, _)| *key == "sslmode")
            .map_or(Ok(Self::Disable), |(_, value)| value.parse())
    }
}

fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    url.split_once('?')
        .map_or("", |(_, query)| query)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
}

/// How to open TLS connections to the database of one URL.
#[derive(Clone, Debug)]
pub struct DatabaseTls {
    mode: SslMode,
    /// The rustls configuration, unless the mode is `Disable`.
    config: Option<Arc<ClientConfig>>,
}

impl DatabaseTls {
    /// Reads the CA file (`NINAIVALAIGAL_DATABASE_CA`) if any and prepares
    /// the verifier `url`'s `sslmode` asks for. Warns when TLS is required
    /// but the server's certificate cannot be checked.
    pub fn new(url: &DatabaseUrl, ca: Option<&Path>) -> anyhow::Result<Self> {
        let mode = SslMode::of_url(url.expose())
            .map_err(|error| anyhow::anyhow!("the database URL {url}: {error}"))?;
        let roots = ca.map(|path| read_roots(path, CA_SETTING)).transpose()?;
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
            (SslMode::Disable, _) => {
                if !is_on_this_machine(url.expose()) {
                    tracing::warn!(
                        "the database connection to {url} is not encrypted: add sslmode=verify-full to the URL and set {CA_SETTING}"
                    );
                }
                return Ok(Self { mode, config: None });
            }
            (SslMode::Prefer | SslMode::Require, None) => {
                if mode == SslMode::Require {
                    tracing::warn!(
                        "sslmode=require without {CA_SETTING}: the database connection is encrypted but the server's certificate is not checked; set {CA_SETTING} and sslmode=verify-full"
                    );
                }
                Arc::new(Unverified(provider.clone()))
            }
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(roots)) => {
                Arc::new(ChainOnly(webpki_verifier(roots, &provider)?))
            }
            (SslMode::VerifyCa, None) => {
                Arc::new(ChainOnly(webpki_verifier(system_roots()?, &provider)?))
            }
            (SslMode::VerifyFull, roots) => {
                let roots = match roots {
                    Some(roots) => roots,
                    None => system_roots()?,
                };
                webpki_verifier(roots, &provider)?
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| anyhow::anyhow!("database TLS: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            mode,
            config: Some(Arc::new(config)),
        })
    }

    /// The URL's `sslmode`.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens a connection to `url` (the URL this was made for).
    pub async fn connect(&self, url: &str) -> ConnectionResult<AsyncPgConnection> {
        let mut config = tokio_postgres::Config::from_str(&for_tokio_postgres(url))
            .map_err(|error| ConnectionError::InvalidConnectionUrl(error.to_string()))?;
        let bad_connection = |error: tokio_postgres::Error| {
            ConnectionError::BadConnection(format!("cannot connect to the database: {error}"))
        };
        match &self.config {
            None => {
                config.ssl_mode(PgSslMode::Disable);
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(bad_connection)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                config.ssl_mode(match self.mode {
                    SslMode::Prefer => PgSslMode::Prefer,
                    _ => PgSslMode::Require,
                });
                let (client, connection) = config
                    .connect(MakeRustlsConnect::new(ClientConfig::clone(tls)))
                    .await
                    .map_err(bad_connection)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
    }
}

/// `url` with `sslmode=verify-*` replaced by `require` (tokio-postgres
/// refuses the others; the verifier does their checks).
fn for_tokio_postgres(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("sslmode", "verify-ca" | "verify-full")) => "sslmode=require".to_owned(),
            Some(("sslmode", "allow")) => "sslmode=disable".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// True when every host of `url` is a loopback address, `localhost` or a
/// unix socket: plaintext to it never crosses a network.
fn is_on_this_machine(url: &str) -> bool {
    use tokio_postgres::config::Host;
    tokio_postgres::Config::from_str(&for_tokio_postgres(url)).is_ok_and(|config| {
        config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        })
    })
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> anyhow::Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| {
            anyhow::anyhow!("{CA_SETTING}: cannot verify the database with it: {error}")
        })
}

fn system_roots() -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        anyhow::bail!(
            "sslmode=verify-ca/verify-full: the system has no CA certificates; set {CA_SETTING} to the CA of the database server"
        );
    }
    Ok(roots)
}

/// The chain is checked, the host name is not (`verify-ca`, and `require`
/// with a CA, as libpq does when it has a root certificate).
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
    ) -> Result<ServerCertVerified, TlsError> {
        // webpki checks the name last, once the chain is trusted.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Encryption without checking who the server is (`prefer`/`require`
/// without a CA, libpq's meaning): proof against listening, not against a
/// server in the middle. The handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_from_the_query() {
        let mode = |url: &str| SslMode::of_url(url);
        assert_eq!(mode("postgres://u@h/db").unwrap(), SslMode::Disable);
        assert_eq!(
            mode("postgres://u@h/db?sslmode=prefer").unwrap(),
            SslMode::Prefer
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=verify-full").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("postgres://u@h/db?application_name=x&sslmode=require").unwrap(),
            SslMode::Require
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=allow").unwrap(),
            SslMode::Disable
        );
        assert!(mode("postgres://u@h/db?sslmode=verify").is_err());
    }

    #[test]
    fn tokio_postgres_gets_a_mode_it_knows() {
        assert_eq!(
            for_tokio_postgres("postgres://u@h/db?sslmode=verify-full&connect_timeout=5"),
            "postgres://u@h/db?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            for_tokio_postgres("postgres://u@h/db?sslmode=verify-ca"),
            "postgres://u@h/db?sslmode=require"
        );
        assert_eq!(for_tokio_postgres("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn plaintext_is_told_apart_by_where_the_database_is() {
        assert!(is_on_this_machine("postgres://u:p@127.0.0.1:5432/db"));
        assert!(is_on_this_machine("postgres://u:p@localhost/db"));
        assert!(!is_on_this_machine("postgres://u:p@db.example:5432/db"));
        assert!(!is_on_this_machine("postgres://u:p@10.0.0.5/db"));
    }
}
