//! Whether the gRPC port serves TLS, and the TLS it serves: the server's
//! certificate (reloaded on change), optionally client certificates checked
//! against a CA (mTLS), HTTP/2 by ALPN, and a bound on the handshake time.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use rustls::{ServerConfig, server::WebPkiClientVerifier};
use tokio_rustls::TlsAcceptor;

use super::{certificate::ReloadingCertificate, settings::TlsSettings};
use crate::tls::{provider, read_roots};

/// The TLS side of accepting a connection.
#[derive(Clone)]
pub struct ServerTls {
    /// Does the handshake.
    pub acceptor: TlsAcceptor,
    /// Longest a handshake may take.
    pub handshake_timeout: Duration,
}

/// What the settings ask for on a given address.
#[derive(Debug, PartialEq)]
enum Mode {
    Tls {
        cert: PathBuf,
        key: PathBuf,
        client_ca: Option<PathBuf>,
    },
    /// Plaintext on a loopback address: nothing leaves the machine.
    PlaintextOnLoopback,
    /// Plaintext elsewhere, because `NINAIVALAIGAL_ALLOW_PLAINTEXT` says so.
    PlaintextAllowed,
}

fn mode(settings: &TlsSettings, addr: SocketAddr, listen_setting: &str) -> anyhow::Result<Mode> {
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Ok(Mode::Tls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: settings.tls_client_ca.clone(),
        }),
        (Some(_), None) | (None, Some(_)) => anyhow::bail!(
            "NINAIVALAIGAL_TLS_CERT and NINAIVALAIGAL_TLS_KEY go together: set both to serve TLS, or neither"
        ),
        (None, None) if settings.tls_client_ca.is_some() => anyhow::bail!(
            "NINAIVALAIGAL_TLS_CLIENT_CA needs TLS: set NINAIVALAIGAL_TLS_CERT and NINAIVALAIGAL_TLS_KEY too"
        ),
        (None, None) if addr.ip().is_loopback() => Ok(Mode::PlaintextOnLoopback),
        (None, None) if settings.allow_plaintext => Ok(Mode::PlaintextAllowed),
        (None, None) => anyhow::bail!(
            "{listen_setting} is {addr}, not a loopback address: set NINAIVALAIGAL_TLS_CERT and NINAIVALAIGAL_TLS_KEY to serve TLS, or NINAIVALAIGAL_ALLOW_PLAINTEXT=true to serve plaintext on a network encrypted by other means"
        ),
    }
}

/// The TLS to serve on `addr`, or `None` for plaintext (which is logged as
/// a warning). Refuses plaintext on a non-loopback address unless allowed;
/// every error is one line naming the settings.
pub fn configure(
    settings: &TlsSettings,
    addr: SocketAddr,
    listen_setting: &str,
) -> anyhow::Result<Option<ServerTls>> {
    let (cert, key, client_ca) = match mode(settings, addr, listen_setting)? {
        Mode::Tls {
            cert,
            key,
            client_ca,
        } => (cert, key, client_ca),
        Mode::PlaintextOnLoopback => {
            tracing::warn!(
                %addr,
                "serving plaintext gRPC (no TLS) on a loopback address; set NINAIVALAIGAL_TLS_CERT and NINAIVALAIGAL_TLS_KEY to serve TLS"
            );
            return Ok(None);
        }
        Mode::PlaintextAllowed => {
            tracing::warn!(
                %addr,
                "serving plaintext gRPC (no TLS) because NINAIVALAIGAL_ALLOW_PLAINTEXT is set: tokens and data cross the network unencrypted unless something else encrypts it"
            );
            return Ok(None);
        }
    };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the TLS provider offers no safe protocol version")?;
    let builder = match &client_ca {
        Some(path) => {
            let roots = read_roots(path, "NINAIVALAIGAL_TLS_CLIENT_CA")?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "NINAIVALAIGAL_TLS_CLIENT_CA: {} cannot verify clients: {error}",
                            path.display()
                        )
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let certificate = ReloadingCertificate::load(&cert, &key, provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(certificate));
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    tracing::info!(
        %addr,
        cert = %cert.display(),
        client_certificates = client_ca.is_some(),
        "serving gRPC over TLS"
    );
    Ok(Some(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        handshake_timeout: settings.tls_handshake_seconds.0,
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Test {
        #[command(flatten)]
        tls: TlsSettings,
    }

    fn settings(args: &[&str]) -> TlsSettings {
        Test::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .unwrap()
            .tls
    }

    fn mode_on(args: &[&str], addr: &str) -> anyhow::Result<Mode> {
        mode(&settings(args), addr.parse().unwrap(), "LISTEN")
    }

    #[test]
    fn plaintext_only_on_loopback_or_when_allowed() {
        assert_eq!(
            mode_on(&[], "127.0.0.1:1").unwrap(),
            Mode::PlaintextOnLoopback
        );
        assert_eq!(mode_on(&[], "[::1]:1").unwrap(), Mode::PlaintextOnLoopback);
        let error = mode_on(&[], "0.0.0.0:1").unwrap_err().to_string();
        assert!(
            error.starts_with("LISTEN is 0.0.0.0:1, not a loopback address")
                && error.contains("NINAIVALAIGAL_TLS_CERT")
                && error.contains("NINAIVALAIGAL_ALLOW_PLAINTEXT"),
            "{error}"
        );
        assert_eq!(
            mode_on(&["--allow-plaintext"], "10.0.0.1:1").unwrap(),
            Mode::PlaintextAllowed
        );
    }

    #[test]
    fn tls_needs_both_files() {
        assert!(matches!(
            mode_on(&["--tls-cert=c", "--tls-key=k"], "0.0.0.0:1").unwrap(),
            Mode::Tls {
                client_ca: None,
                ..
            }
        ));
        for half in [
            &["--tls-cert=c"][..],
            &["--tls-key=k"],
            &["--tls-client-ca=ca"],
        ] {
            let error = mode_on(half, "127.0.0.1:1").unwrap_err().to_string();
            assert!(error.contains("NINAIVALAIGAL_TLS_KEY"), "{error}");
        }
    }
}
