//! Loading the signing key and the published public keys. Every failure
//! names the setting it came from, so start-up stops with one clear line.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{Jwk, ThumbprintHash},
};

use crate::config::Settings;

/// An Ed25519 public key as published in the JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicJwk {
    /// RFC 7638 thumbprint of the key, so it is stable across restarts.
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
}

/// What signs access tokens, and what verifies them.
pub enum KeyMaterial {
    /// EdDSA: a private key, and the public keys to publish (the signing
    /// key's first, then those of previous keys during a rotation).
    Ed25519 {
        /// The signing key.
        signing: EncodingKey,
        /// `kid` of the signing key.
        kid: String,
        /// Every key GetJwks serves.
        published: Vec<PublicJwk>,
    },
    /// HS256 with one shared secret.
    Shared {
        /// The secret.
        secret: Vec<u8>,
    },
}

const PRIVATE_KEY_SETTING: &str = "NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE";
const PUBLIC_KEYS_SETTING: &str = "NINAIVALAIGAL_JWT_PUBLIC_KEY_FILES";
const SECRET_SETTING: &str = "NINAIVALAIGAL_JWT_SECRET";

impl KeyMaterial {
    /// Loads the keys the settings name.
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        match (&settings.jwt_private_key_file, &settings.jwt.secret) {
            (Some(_), Some(_)) | (None, None) => bail!(
                "set exactly one of {PRIVATE_KEY_SETTING} (Ed25519 key file, recommended) \
                 or {SECRET_SETTING} (HS256 shared secret)"
            ),
            (None, Some(secret)) => {
                if !settings.jwt_public_key_files.is_empty() {
                    bail!("{PUBLIC_KEYS_SETTING} only applies with {PRIVATE_KEY_SETTING}");
                }
                Ok(Self::Shared {
                    secret: secret.expose().as_bytes().to_vec(),
                })
            }
            (Some(private_key_file), None) => {
                let pem = read(private_key_file, PRIVATE_KEY_SETTING)?;
                let (signing, public) = ed25519_private_key(&pem).map_err(|error| {
                    anyhow!(
                        "{PRIVATE_KEY_SETTING}: {} is not a PEM PKCS#8 Ed25519 private key \
                         ({error}); create one with `openssl genpkey -algorithm ed25519`",
                        private_key_file.display()
                    )
                })?;
                let current = public_jwk(&public)?;
                let kid = current.kid.clone();
                let mut published = vec![current];
                for file in &settings.jwt_public_key_files {
                    let pem = read(file, PUBLIC_KEYS_SETTING)?;
                    let public = ed25519_public_key(&pem).map_err(|error| {
                        anyhow!(
                            "{PUBLIC_KEYS_SETTING}: {} is not a PEM Ed25519 public key ({error}); \
                             derive one with `openssl pkey -in old.pem -pubout`",
                            file.display()
                        )
                    })?;
                    let jwk = public_jwk(&public)?;
                    if !published.contains(&jwk) {
                        published.push(jwk);
                    }
                }
                Ok(Self::Ed25519 {
                    signing,
                    kid,
                    published,
                })
            }
        }
    }
}

fn read(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| anyhow!("{setting}: cannot read {}: {error}", path.display()))
}

/// Parses a PEM PKCS#8 (v1 or v2) Ed25519 private key and derives its
/// public key.
pub fn ed25519_private_key(pem: &[u8]) -> anyhow::Result<(EncodingKey, Vec<u8>)> {
    let signing = EncodingKey::from_ed_pem(pem).context("not an Ed25519 private key PEM")?;
    // jsonwebtoken keeps the PKCS#8 document; aws-lc checks it and gives the
    // public half (Jwk::from_encoding_key cannot read PKCS#8 v2).
    let pair = Ed25519KeyPair::from_pkcs8(signing.as_bytes())
        .map_err(|error| anyhow!("invalid Ed25519 key: {error}"))?;
    let public = pair.public_key().as_ref().to_vec();
    Ok((signing, public))
}

/// Parses a PEM (SPKI) Ed25519 public key into its 32 bytes.
pub fn ed25519_public_key(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = DecodingKey::from_ed_pem(pem).context("not an Ed25519 public key PEM")?;
    let bytes = key.try_get_as_bytes()?.to_vec();
    if bytes.len() != 32 {
        bail!("not a 32-byte Ed25519 public key");
    }
    Ok(bytes)
}

/// The JWK of a public key, with its RFC 7638 thumbprint as `kid`.
pub fn public_jwk(public: &[u8]) -> anyhow::Result<PublicJwk> {
    let jwk = Jwk::from_decoding_key(&DecodingKey::from_ed_der(public), Some(Algorithm::EdDSA))
        .context("cannot build a JWK from the public key")?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .context("cannot compute the key thumbprint")?;
    Ok(PublicJwk {
        kid,
        x: URL_SAFE_NO_PAD.encode(public),
    })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn pkcs8_v1_and_v2_keys_load_to_the_same_public_key() {
        let rng = SystemRandom::new();
        let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
        let v1 = pair.to_pkcs8v1().unwrap();
        let (_, from_v2) = ed25519_private_key(pem("PRIVATE KEY", v2.as_ref()).as_bytes()).unwrap();
        let (_, from_v1) = ed25519_private_key(pem("PRIVATE KEY", v1.as_ref()).as_bytes()).unwrap();
        assert_eq!(from_v1, pair.public_key().as_ref());
        assert_eq!(from_v2, from_v1);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let public = URL_SAFE_NO_PAD.decode(x).unwrap();
        let jwk = public_jwk(&public).unwrap();
        assert_eq!(jwk.x, x);
        assert_eq!(jwk.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn a_public_key_pem_loads() {
        let rng = SystemRandom::new();
        let pair =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let mut spki = hex_prefix();
        spki.extend_from_slice(pair.public_key().as_ref());
        let public = ed25519_public_key(pem("PUBLIC KEY", &spki).as_bytes()).unwrap();
        assert_eq!(public, pair.public_key().as_ref());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(ed25519_private_key(b"not a key").is_err());
        assert!(
            ed25519_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    /// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
    fn hex_prefix() -> Vec<u8> {
        vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ]
    }
}
