//! Tokens a [`TokenVerifier`](crate::token::TokenVerifier) has verified,
//! remembered until they expire, so that a client sending the same token on
//! every call pays for one signature check, not one per call.
//!
//! Keyed by the SHA-256 of the token, so the cache holds no bearer
//! credentials, only claims; bounded in entries, so a flood of valid tokens
//! evicts older ones rather than growing it. Only verified tokens enter it.

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use crate::token::Claims;

/// Tokens remembered at most; about 300 bytes each.
pub const CAPACITY: usize = 16_384;

pub struct VerifiedTokens {
    claims: Cache<[u8; 32], Claims>,
    /// Seconds past `exp` a token is still accepted (the verifier's leeway).
    leeway_seconds: u64,
}

impl VerifiedTokens {
    pub fn new(leeway_seconds: u64) -> Self {
        Self {
            claims: Cache::new(CAPACITY),
            leeway_seconds,
        }
    }

    /// The claims of `token` if it was verified and, at `now` (seconds since
    /// the epoch), would still pass the verifier's expiry check.
    pub fn get(&self, token: &str, now: u64) -> Option<Claims> {
        let key = key(token);
        let claims = self.claims.get(&key)?;
        // The verifier's own rule: refused once exp < now - leeway.
        let expired = u64::try_from(claims.exp)
            .map_or(true, |exp| exp < now.saturating_sub(self.leeway_seconds));
        if expired {
            self.claims.remove(&key);
            return None;
        }
        Some(claims)
    }

    /// Remembers that `token` was verified with these claims.
    pub fn insert(&self, token: &str, claims: &Claims) {
        self.claims.insert(key(token), claims.clone());
    }

    /// Forgets every token: the keys they were checked with changed.
    pub fn clear(&self) {
        self.claims.clear();
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "7".into(),
            user_id: 7,
            email: "ada@example.test".into(),
            account_type: "individual".into(),
            role: "user".into(),
            sid: uuid::Uuid::nil(),
            iat: 0,
            nbf: 0,
            exp,
            iss: "i".into(),
            aud: "a".into(),
        }
    }

    #[test]
    fn a_token_is_remembered_until_it_expires_with_the_leeway() {
        let cache = VerifiedTokens::new(30);
        assert_eq!(cache.get("t", 1_000), None, "never verified");
        cache.insert("t", &claims(1_000));
        assert_eq!(cache.get("t", 1_000), Some(claims(1_000)));
        assert_eq!(cache.get("t", 1_030), Some(claims(1_000)), "within leeway");
        assert_eq!(cache.get("t", 1_031), None, "past exp + leeway");
        assert_eq!(cache.get("t", 1_000), None, "and forgotten");
        assert_eq!(cache.get("other", 1_000), None);
    }

    #[test]
    fn clearing_forgets_every_token() {
        let cache = VerifiedTokens::new(0);
        cache.insert("t", &claims(i64::MAX));
        cache.clear();
        assert_eq!(cache.get("t", 0), None);
    }

    #[test]
    fn a_negative_expiry_never_passes() {
        let cache = VerifiedTokens::new(0);
        cache.insert("t", &claims(-1));
        assert_eq!(cache.get("t", 0), None);
    }
}
