//! Signing keys the harness generates for each test run (never committed),
//! and minting of arbitrary access tokens with them, for tests of tokens the
//! auth-service would never issue (expired, wrong audience, wrong key...).

use std::{path::PathBuf, sync::OnceLock};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header,
    jwk::{Jwk, ThumbprintHash},
};
use ninaivalaigal::token::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// An Ed25519 key pair in the forms tests need.
pub struct TestKey {
    /// PKCS#8 private key, PEM (what the auth-service reads).
    pub private_pem: String,
    /// SubjectPublicKeyInfo public key, PEM.
    pub public_pem: String,
    /// RFC 7638 thumbprint, the `kid` the auth-service derives.
    pub kid: String,
    /// Public key, base64url (the JWK `x`).
    pub x: String,
    encoding: EncodingKey,
}

impl TestKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse generated key");
        // PKCS#8 v1, as `openssl genpkey` writes it.
        let v1 = pair.to_pkcs8v1().expect("serialize key");
        let public = pair.public_key().as_ref().to_vec();
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&public);
        let jwk =
            Jwk::from_decoding_key(&DecodingKey::from_ed_der(&public), Some(Algorithm::EdDSA))
                .expect("jwk");
        let private_pem = pem("PRIVATE KEY", v1.as_ref());
        Self {
            encoding: EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("encoding key"),
            private_pem,
            public_pem: pem("PUBLIC KEY", &spki),
            kid: jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint"),
            x: URL_SAFE_NO_PAD.encode(&public),
        }
    }

    /// Signs `claims` with this key, `kid` set to its thumbprint.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(&header, claims)
    }

    /// Signs `claims` with this key and the given header.
    pub fn sign_with_header(&self, header: &Header, claims: &Claims) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign token")
    }

    /// Signs arbitrary JSON claims (for claims the `Claims` type cannot
    /// express, such as a missing `exp`).
    pub fn sign_json(&self, header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign token")
    }

    /// Writes the private key to a new file only the current user can read;
    /// the file is removed when the returned guard is dropped.
    pub fn write_private_key(&self) -> KeyFile {
        write_temp(&self.private_pem)
    }

    /// Writes the public key to a new file, removed with the guard.
    pub fn write_public_key(&self) -> KeyFile {
        write_temp(&self.public_pem)
    }
}

/// The key `spawn_pair` gives the auth-service, generated once per test process.
pub fn harness_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(TestKey::generate)
}

/// Claims like the auth-service issues, valid for an hour from now, for
/// tests to alter before minting.
pub fn claims_for(user_id: i64, email: &str, session_id: uuid::Uuid) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: user_id.to_string(),
        user_id,
        email: email.to_owned(),
        account_type: "individual".into(),
        role: "user".into(),
        sid: session_id,
        iat: now,
        nbf: now,
        exp: now + 3600,
        iss: DEFAULT_ISSUER.into(),
        aud: DEFAULT_AUDIENCE.into(),
    }
}

/// Signs `claims` with the harness key, so the services accept the signature.
pub fn mint(claims: &Claims) -> String {
    harness_key().sign(claims)
}

/// Signs `claims` with HS256 and `secret` (kid `hs256`, as the auth-service does).
pub fn mint_hs256(claims: &Claims, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs256".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign token")
}

/// An unsigned token (`alg: none`) carrying `claims`.
pub fn unsigned(claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    format!("{header}.{body}.")
}

/// A key file that is deleted when dropped.
pub struct KeyFile {
    /// Where it is.
    pub path: PathBuf,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn write_temp(contents: &str) -> KeyFile {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;

    let path = std::env::temp_dir().join(format!(
        "ninaivalaigal-test-key-{}.pem",
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&path).expect("create key file");
    file.write_all(contents.as_bytes()).expect("write key file");
    KeyFile { path }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
