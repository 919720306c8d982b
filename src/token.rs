//! Access-token claims and their verification, shared by the auth-service
//! (which signs them) and every service that accepts them.
//!
//! Tokens are JWTs signed with Ed25519 (`EdDSA`, the default, so verifiers
//! only hold public keys) or HS256 with a shared secret. A verifier accepts
//! exactly one algorithm, requires `exp`, `nbf`, `iss`, `aud` and `sub`, and
//! allows a small, configurable clock leeway.

use std::{collections::HashMap, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::token_cache::VerifiedTokens;

/// Default `iss` of access tokens.
pub const DEFAULT_ISSUER: &str = "ninaivalaigal-auth";
/// Default `aud` of access tokens.
pub const DEFAULT_AUDIENCE: &str = "ninaivalaigal";

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id, as a string (RFC 7519).
    pub sub: String,
    /// The user id, as a number; a token whose `sub` names another is refused.
    pub user_id: i64,
    /// The user's normalized email.
    pub email: String,
    /// Kind of account, e.g. `individual`.
    pub account_type: String,
    /// `user` or `admin`.
    pub role: String,
    /// Id of the session the token belongs to; revoking the session revokes the token.
    pub sid: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch).
    pub nbf: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// The caller of an RPC, as established by a verified access token. Handlers
/// receive this typed value, never a user id from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user's id.
    pub user_id: i64,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// The user's email.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// When the token expires (seconds since the epoch).
    pub expires_at: i64,
}

impl From<Claims> for AuthenticatedUser {
    fn from(claims: Claims) -> Self {
        Self {
            user_id: claims.user_id,
            session_id: claims.sid,
            email: claims.email,
            role: claims.role,
            expires_at: claims.exp,
        }
    }
}

/// Why a token was refused. The messages are safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT at all.
    #[error("access token is malformed")]
    Malformed,
    /// Signed with an algorithm this deployment does not accept.
    #[error("access token uses an algorithm this server does not accept")]
    WrongAlgorithm,
    /// Signed by a key this verifier does not know.
    #[error("access token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("access token signature is invalid")]
    BadSignature,
    /// Past its `exp`.
    #[error("access token has expired; log in again or refresh it")]
    Expired,
    /// Before its `nbf`.
    #[error("access token is not valid yet")]
    NotYetValid,
    /// Wrong issuer or audience, or a required claim missing or malformed.
    #[error("access token is not valid for this service: {0}")]
    Invalid(String),
    /// The session was revoked (logout, reuse detection, disabled account).
    #[error("access token has been revoked; log in again")]
    Revoked,
}

/// The HS256 shared secret, as a setting of both services. Parsing enforces
/// one rule for both, so one secret fits both; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SharedSecret {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.len() < 32 {
            return Err("must be at least 32 bytes long (e.g. `openssl rand -base64 48`)".into());
        }
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

/// The token settings every service takes the same way, flattened into
/// each service's settings: both must agree on all of them.
#[derive(Clone, Debug, clap::Args)]
pub struct JwtSettings {
    /// Shared secret (at least 32 bytes) of HS256 deployments, the same for
    /// every service. When set, tokens are HS256 and no key pair is used;
    /// every verifier then holds the secret, so prefer Ed25519.
    #[arg(
        long = "jwt-secret",
        env = "NINAIVALAIGAL_JWT_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<SharedSecret>,

    /// `iss` claim of access tokens.
    #[arg(long = "jwt-issuer", env = "NINAIVALAIGAL_JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    pub issuer: String,

    /// `aud` claim of access tokens.
    #[arg(long = "jwt-audience", env = "NINAIVALAIGAL_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub audience: String,

    /// Clock skew, in seconds, tolerated when checking `exp` and `nbf`.
    #[arg(
        long = "jwt-leeway-seconds",
        env = "NINAIVALAIGAL_JWT_LEEWAY_SECONDS",
        default_value_t = 30
    )]
    pub leeway_seconds: u64,
}

impl JwtSettings {
    /// Clock leeway for token checks.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway_seconds)
    }
}

/// How tokens are verified: which algorithm, and with which keys.
enum Keys {
    /// HS256 with one shared secret.
    Shared(DecodingKey),
    /// EdDSA with public keys by `kid`; more than one during a rotation.
    Ed25519(HashMap<String, DecodingKey>),
}

/// Verifies access tokens. Cheap to share behind an `Arc`; the Ed25519 key set
/// can be replaced while it is in use (JWKS refresh). A token it verified
/// once is accepted without a second signature check until it expires or
/// the key set changes.
pub struct TokenVerifier {
    keys: RwLock<Keys>,
    validation: Validation,
    verified: VerifiedTokens,
}

impl TokenVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str, leeway: Duration) -> Self {
        Self {
            keys: RwLock::new(Keys::Shared(DecodingKey::from_secret(secret))),
            validation: validation(Algorithm::HS256, issuer, audience, leeway),
            verified: VerifiedTokens::new(leeway.as_secs()),
        }
    }

    /// A verifier for EdDSA tokens, starting with no keys (see [`Self::set_ed25519_keys`]).
    pub fn ed25519(issuer: &str, audience: &str, leeway: Duration) -> Self {
        Self {
            keys: RwLock::new(Keys::Ed25519(HashMap::new())),
            validation: validation(Algorithm::EdDSA, issuer, audience, leeway),
            verified: VerifiedTokens::new(leeway.as_secs()),
        }
    }

    /// Replaces the Ed25519 public keys, given as `(kid, x)` with `x` the
    /// base64url public key of a JWK. Ignored by an HS256 verifier.
    pub fn set_ed25519_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<usize, jsonwebtoken::errors::Error> {
        let mut decoded = HashMap::new();
        for (kid, x) in keys {
            decoded.insert(kid.to_owned(), DecodingKey::from_ed_components(x)?);
        }
        let count = decoded.len();
        let mut guard = self.keys.write();
        if let Keys::Ed25519(current) = &mut *guard {
            *current = decoded;
            // A token checked with a key that is gone must be checked again.
            self.verified.clear();
        }
        Ok(count)
    }

    /// True when this verifier uses EdDSA keys that come from a JWKS.
    pub fn uses_public_keys(&self) -> bool {
        self.validation.algorithms == [Algorithm::EdDSA]
    }

    /// True when an EdDSA verifier knows the given key id.
    pub fn knows_kid(&self, kid: &str) -> bool {
        let guard = self.keys.read();
        match &*guard {
            Keys::Shared(_) => true,
            Keys::Ed25519(keys) => keys.contains_key(kid),
        }
    }

    /// Checks the token's algorithm, signature and claims; a token that
    /// passed before and has not expired since passes again unchecked.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self
            .verified
            .get(token, jsonwebtoken::get_current_timestamp())
        {
            return Ok(claims);
        }
        let claims = self.verify_signed(token)?;
        self.verified.insert(token, &claims);
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        let guard = self.keys.read();
        let key = match &*guard {
            Keys::Shared(key) => key,
            Keys::Ed25519(keys) => header
                .kid
                .as_deref()
                .and_then(|kid| keys.get(kid))
                .ok_or(TokenError::UnknownKey)?,
        };
        let data = decode::<Claims>(token, key, &self.validation).map_err(classify)?;
        let claims = data.claims;
        if claims.sub != claims.user_id.to_string() {
            return Err(TokenError::Invalid("sub and user_id disagree".into()));
        }
        Ok(claims)
    }
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str, leeway: Duration) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = leeway.as_secs();
    validation
}

fn classify(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
        ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
        ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience".into()),
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Invalid(format!("missing `{claim}`")),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed,
        _ => TokenError::Invalid("claims are malformed".into()),
    }
}
