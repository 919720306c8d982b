//! Issuing tokens: signed access tokens (JWT) and opaque refresh tokens.

use std::time::Duration;

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ninaivalaigal::token::{Claims, TokenVerifier};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{db::models::User, keys::KeyMaterial, keys::PublicJwk};

/// `kid` header of HS256 tokens (there is one shared key).
const SHARED_KID: &str = "hs256";

/// Signs access tokens with the configured key, and verifies them with the
/// matching verifier (which accepts only that algorithm).
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
    published: Vec<PublicJwk>,
    issuer: String,
    audience: String,
    lifetime: Duration,
    verifier: TokenVerifier,
}

/// A freshly signed access token.
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl TokenSigner {
    /// A signer for `keys`, issuing tokens valid for `lifetime`.
    pub fn new(
        keys: KeyMaterial,
        issuer: &str,
        audience: &str,
        lifetime: Duration,
        leeway: Duration,
    ) -> anyhow::Result<Self> {
        let (key, header, published, verifier) = match keys {
            KeyMaterial::Ed25519 {
                signing,
                kid,
                published,
            } => {
                let verifier = TokenVerifier::ed25519(issuer, audience, leeway);
                verifier
                    .set_ed25519_keys(
                        published
                            .iter()
                            .map(|jwk| (jwk.kid.as_str(), jwk.x.as_str())),
                    )
                    .context("cannot use the published public keys")?;
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(kid);
                (signing, header, published, verifier)
            }
            KeyMaterial::Shared { secret } => {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(SHARED_KID.to_owned());
                let verifier = TokenVerifier::hs256(&secret, issuer, audience, leeway);
                (
                    EncodingKey::from_secret(&secret),
                    header,
                    Vec::new(),
                    verifier,
                )
            }
        };
        Ok(Self {
            key,
            header,
            published,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime,
            verifier,
        })
    }

    /// Signs an access token for `user` in session `session_id`.
    pub fn sign(&self, user: &User, session_id: Uuid) -> anyhow::Result<AccessToken> {
        let now = Utc::now();
        let lifetime = chrono::Duration::from_std(self.lifetime).context("token lifetime")?;
        let expires_at = now + lifetime;
        let claims = Claims {
            sub: user.id.to_string(),
            user_id: user.id,
            email: user.email.clone(),
            account_type: user.account_type.clone(),
            role: user.role.clone(),
            sid: session_id,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = encode(&self.header, &claims, &self.key).context("cannot sign access token")?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at);
        Ok(AccessToken { token, expires_at })
    }

    /// Verifies an access token (signature, algorithm, `exp`/`nbf`, issuer, audience).
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// The public keys GetJwks serves (none for HS256).
    pub fn published_keys(&self) -> &[PublicJwk] {
        &self.published
    }
}

/// A new random refresh token (256 bits, base64url).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores instead of a refresh token. The token has 256
/// random bits, so a fast unsalted hash is enough.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(refresh_token_hash(&a).len(), 32);
        assert_ne!(refresh_token_hash(&a), a.as_bytes());
    }
}
