//! PEM files and the crypto provider every TLS connection of Ninaivalaigal
//! uses: served gRPC, the memory-service's key fetch, the database and the
//! health check. One provider (aws-lc, which jsonwebtoken and tonic's
//! `tls-aws-lc` already bring), so the binaries carry one crypto stack.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// The crypto provider of every TLS configuration built here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of a PEM file (a chain: the leaf first). Errors name
/// `setting` and the path.
pub fn read_certificates(
    path: &Path,
    setting: &str,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            anyhow::anyhow!(
                "{setting}: cannot read certificates from {}: {error}",
                path.display()
            )
        })?;
    if certificates.is_empty() {
        anyhow::bail!(
            "{setting}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certificates)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1). The error names
/// `setting` and the path, never the key.
pub fn read_private_key(path: &Path, setting: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| {
        anyhow::anyhow!(
            "{setting}: cannot read a PEM private key from {}: {error}",
            path.display()
        )
    })
}

/// The certificate authorities of a PEM file, as trust anchors.
pub fn read_roots(path: &Path, setting: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path, setting)? {
        roots.add(certificate).with_context(|| {
            format!(
                "{setting}: {} holds a certificate that is not a usable CA",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// A PEM file's bytes, for APIs that take PEM (tonic's client TLS).
pub fn read_pem(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| anyhow::anyhow!("{setting}: cannot read {}: {error}", path.display()))
}

/// A PEM file named by a setting.
#[derive(Clone, Copy, Debug)]
pub struct PemSetting<'a> {
    /// The file.
    pub path: &'a Path,
    /// The setting that named it, for errors.
    pub setting: &'a str,
}

/// TLS for a gRPC client (tonic): the server is checked against `ca` (or,
/// without one, the system's roots), and `identity` (certificate, key), when
/// given, is presented to a server that asks for client certificates.
pub fn grpc_client_config(
    ca: Option<PemSetting<'_>>,
    identity: Option<(PemSetting<'_>, PemSetting<'_>)>,
    handshake_timeout: std::time::Duration,
) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};

    let mut config = ClientTlsConfig::new().timeout(handshake_timeout);
    config = match ca {
        Some(ca) => {
            // Parsed here so a bad file stops start-up, not the first call.
            read_roots(ca.path, ca.setting)?;
            config.ca_certificate(Certificate::from_pem(read_pem(ca.path, ca.setting)?))
        }
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = identity {
        read_certificates(cert.path, cert.setting)?;
        read_private_key(key.path, key.setting)?;
        config = config.identity(Identity::from_pem(
            read_pem(cert.path, cert.setting)?,
            read_pem(key.path, key.setting)?,
        ));
    }
    Ok(config)
}

/// True when `uri` names this machine (`localhost` or a loopback address),
/// where plaintext never crosses a network.
pub fn is_loopback(uri: &http::Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for (uri, loopback) in [
            ("http://127.0.0.1:1", true),
            ("http://[::1]:1", true),
            ("http://localhost:1", true),
            ("http://auth-service:1", false),
            ("http://10.0.0.1:1", false),
            ("http://localhost.example.com:1", false),
        ] {
            assert_eq!(is_loopback(&uri.parse().unwrap()), loopback, "{uri}");
        }
    }
}
