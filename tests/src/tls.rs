//! Certificates made for one test: a CA ([`TestCa`]) and the certificates
//! and keys it signs, written as PEM files into a temporary directory that
//! is deleted with the CA. Nothing here is ever committed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The names every leaf certificate carries: the services listen on
/// 127.0.0.1 in tests, and a client may call it `localhost`.
pub const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate authority of one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let dir = tempfile::tempdir().expect("a directory for certificates");
        std::fs::write(dir.path().join("ca.crt"), issuer.pem()).expect("write ca.crt");
        Self { issuer, dir }
    }

    /// The CA's certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The CA's certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` (server and client use), written as
    /// `<stem>.crt` and `<stem>.key`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.crt")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        self.issue_into(&files, names);
        files
    }

    /// Writes a new leaf certificate for `names` over `files`; returns the
    /// certificate (DER).
    pub fn issue_into(&self, files: &CertFiles, names: &[&str]) -> Vec<u8> {
        let (cert, key) = self.leaf(names);
        std::fs::write(&files.cert, &cert).expect("write the certificate");
        std::fs::write(&files.key, &key).expect("write the key");
        rustls_pem_der(&cert)
    }

    /// A new leaf certificate and key for `names`, as PEM.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "ninaivalaigal test");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// TLS for a tonic client that trusts this CA and presents no
    /// certificate.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca_pem()))
    }

    /// [`Self::client_tls`], presenting `identity`.
    pub fn client_tls_as(&self, identity: &CertFiles) -> ClientTlsConfig {
        self.client_tls().identity(Identity::from_pem(
            std::fs::read(&identity.cert).expect("read the client certificate"),
            std::fs::read(&identity.key).expect("read the client key"),
        ))
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The DER of the first certificate of a PEM text.
fn rustls_pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}
