//! A verifier remembers the tokens it verified, but never past what a fresh
//! check would accept: a new key set makes every token checked again.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ninaivalaigal::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenError, TokenVerifier};
use ninaivalaigal_tests::keys::{TestKey, claims_for, harness_key, mint};

#[test]
fn a_token_checked_with_a_key_that_is_gone_is_refused() {
    let verifier = TokenVerifier::ed25519(DEFAULT_ISSUER, DEFAULT_AUDIENCE, Duration::ZERO);
    let old = harness_key();
    verifier
        .set_ed25519_keys([(old.kid.as_str(), old.x.as_str())])
        .unwrap();
    let token = mint(&claims_for(7, "ada@example.test", uuid::Uuid::new_v4()));
    assert_eq!(verifier.verify(&token).unwrap().user_id, 7);
    assert_eq!(verifier.verify(&token).unwrap().user_id, 7, "again");

    // The old key is withdrawn (say, it leaked): its tokens stop working at once.
    let new = TestKey::generate();
    verifier
        .set_ed25519_keys([(new.kid.as_str(), new.x.as_str())])
        .unwrap();
    assert_eq!(verifier.verify(&token), Err(TokenError::UnknownKey));
}

#[test]
fn a_tampered_copy_of_a_verified_token_is_still_checked() {
    let verifier = TokenVerifier::ed25519(DEFAULT_ISSUER, DEFAULT_AUDIENCE, Duration::ZERO);
    let key = harness_key();
    verifier
        .set_ed25519_keys([(key.kid.as_str(), key.x.as_str())])
        .unwrap();
    let token = mint(&claims_for(7, "ada@example.test", uuid::Uuid::new_v4()));
    verifier.verify(&token).unwrap();
    // Same header and claims, another signature.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(86));
    assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
}
