//! The server's certificate and key, re-read when their files change, so
//! that a renewed certificate (cert-manager, a rotated Secret, a script)
//! is served without a restart.
//!
//! A handshake looks at the files' modification times and sizes at most
//! once a second (two `stat`s); only a change makes it read and parse them.
//! A new pair that does not load (half-written, a key that does not match
//! the certificate) is logged as an error and the old pair is kept, until
//! the files change again.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::tls::{read_certificates, read_private_key};

/// Least time between two looks at the files.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

const CERT_SETTING: &str = "NINAIVALAIGAL_TLS_CERT";
const KEY_SETTING: &str = "NINAIVALAIGAL_TLS_KEY";

/// A certificate resolver that serves the pair last loaded from two files.
pub struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    check_interval: Duration,
    state: Mutex<State>,
}

struct State {
    served: Arc<CertifiedKey>,
    /// The files as they were when `served` was read.
    loaded: Stamps,
    /// The files as they were when they last failed to load.
    failed: Option<Stamps>,
    checked: Instant,
}

/// Modification time and size of each file; `None` when it cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamps([Option<(SystemTime, u64)>; 2]);

impl Stamps {
    fn of(cert: &Path, key: &Path) -> Self {
        let stamp = |path: &Path| {
            // Follows symbolic links, as a Kubernetes Secret volume's are.
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        };
        Self([stamp(cert), stamp(key)])
    }
}

impl ReloadingCertificate {
    /// Loads the pair; an error names the setting at fault.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Self> {
        let loaded = Stamps::of(cert_path, key_path);
        let served = Arc::new(load_pair(cert_path, key_path, &provider)?);
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            check_interval: CHECK_INTERVAL,
            state: Mutex::new(State {
                served,
                loaded,
                failed: None,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair to serve now, reloaded first if the files have changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= self.check_interval {
            state.checked = Instant::now();
            let stamps = Stamps::of(&self.cert_path, &self.key_path);
            if stamps != state.loaded && state.failed != Some(stamps) {
                self.reload(&mut state, stamps);
            }
        }
        state.served.clone()
    }

    fn reload(&self, state: &mut State, stamps: Stamps) {
        match load_pair(&self.cert_path, &self.key_path, &self.provider) {
            Ok(pair) => {
                state.served = Arc::new(pair);
                state.loaded = stamps;
                state.failed = None;
                tracing::info!(
                    cert = %self.cert_path.display(),
                    "reloaded the TLS certificate and key"
                );
            }
            Err(error) => {
                state.failed = Some(stamps);
                tracing::error!(
                    "keeping the TLS certificate served so far: the changed files do not load: {error:#}"
                );
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain = read_certificates(cert_path, CERT_SETTING)?;
    let key = read_private_key(key_path, KEY_SETTING)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| {
        anyhow::anyhow!(
            "{KEY_SETTING}: the key in {} does not fit the certificate in {} ({CERT_SETTING}): {error}",
            key_path.display(),
            cert_path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use rcgen::KeyPair;

    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn cert(&self) -> PathBuf {
            self.dir.path().join("tls.crt")
        }
        fn key(&self) -> PathBuf {
            self.dir.path().join("tls.key")
        }
        /// Writes a new self-signed pair for `name`; returns its DER.
        fn write_pair(&self, name: &str) -> Vec<u8> {
            let key = KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(self.cert(), cert.pem()).unwrap();
            std::fs::write(self.key(), key.serialize_pem()).unwrap();
            cert.der().to_vec()
        }
    }

    fn served_der(resolver: &ReloadingCertificate) -> Vec<u8> {
        resolver.current().cert[0].to_vec()
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_is_not() {
        let files = Files::new();
        let first = files.write_pair("first.example");
        let mut resolver =
            ReloadingCertificate::load(&files.cert(), &files.key(), crate::tls::provider())
                .unwrap();
        resolver.check_interval = Duration::ZERO;
        assert_eq!(served_der(&resolver), first);

        let second = files.write_pair("second.example");
        assert_eq!(served_der(&resolver), second);

        // A key that does not match the certificate: the old pair stays.
        let other_key = KeyPair::generate().unwrap();
        std::fs::write(files.key(), other_key.serialize_pem()).unwrap();
        assert_eq!(served_der(&resolver), second);
        // Half-written certificate: the same.
        std::fs::write(files.cert(), "-----BEGIN CERTIFICATE-----\nAAAA").unwrap();
        assert_eq!(served_der(&resolver), second);

        let third = files.write_pair("third.example");
        assert_eq!(served_der(&resolver), third);
    }

    #[test]
    fn start_up_errors_name_the_setting_at_fault() {
        let files = Files::new();
        files.write_pair("a.example");
        std::fs::write(files.key(), KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let error = ReloadingCertificate::load(&files.cert(), &files.key(), crate::tls::provider())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("NINAIVALAIGAL_TLS_KEY:"), "{error}");

        let missing = files.dir.path().join("missing.crt");
        let error = ReloadingCertificate::load(&missing, &files.key(), crate::tls::provider())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("NINAIVALAIGAL_TLS_CERT:"), "{error}");
    }
}
