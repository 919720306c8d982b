//! Access tokens the services must refuse: wrong signature, unknown key,
//! wrong algorithm, `alg: none`, expired, not yet valid, wrong audience or
//! issuer, tampered claims; and the HS256 mode.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use jsonwebtoken::{Algorithm, Header};
use ninaivalaigal::{
    auth_v1::{GetJwksRequest, WhoAmIRequest},
    token::Claims,
};
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer,
    keys::{TestKey, claims_for, harness_key, mint, mint_hs256, unsigned},
    spawn_pair, spawn_pair_with,
};
use tonic::Code;

async fn who_am_i(pair: &TestPair, token: &str) -> Result<i64, tonic::Status> {
    let mut auth = pair.auth_client().await;
    let me = auth
        .who_am_i(bearer(WhoAmIRequest {}, token))
        .await?
        .into_inner();
    Ok(me.user.expect("a user").id)
}

fn valid_claims(user: &TestUser) -> Claims {
    claims_for(user.id, &user.email, user.session_id.parse().unwrap())
}

async fn assert_refused(pair: &TestPair, token: &str, why: &str, expected_message: &str) {
    let status = who_am_i(pair, token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
    assert!(
        status.message().contains(expected_message),
        "{why}: {status:?} should mention {expected_message:?}"
    );
}

#[tokio::test]
async fn a_well_formed_minted_token_is_accepted() {
    // The control for every refusal below: the same claims, signed properly.
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    assert_eq!(
        who_am_i(&pair, &mint(&valid_claims(&user))).await.unwrap(),
        user.id
    );
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let now = chrono::Utc::now().timestamp();
    let other_key = TestKey::generate();

    // Signed by another key that claims the harness key's id.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(harness_key().kid.clone());
    let token = other_key.sign_with_header(&header, &valid_claims(&user));
    assert_refused(&pair, &token, "wrong signature", "signature").await;

    // Signed by a key the service does not publish.
    let token = other_key.sign(&valid_claims(&user));
    assert_refused(&pair, &token, "unknown key", "unknown key").await;

    // No kid at all.
    let token =
        harness_key().sign_with_header(&Header::new(Algorithm::EdDSA), &valid_claims(&user));
    assert_refused(&pair, &token, "no kid", "unknown key").await;

    // Algorithm confusion: HS256 keyed with the public key.
    let token = mint_hs256(&valid_claims(&user), harness_key().x.as_bytes());
    assert_refused(&pair, &token, "HS256 with the public key", "algorithm").await;

    // alg: none.
    assert_refused(
        &pair,
        &unsigned(&valid_claims(&user)),
        "alg none",
        "malformed",
    )
    .await;

    // Expired beyond the 30 s leeway.
    let mut claims = valid_claims(&user);
    claims.iat = now - 7200;
    claims.nbf = now - 7200;
    claims.exp = now - 120;
    assert_refused(&pair, &mint(&claims), "expired", "expired").await;

    // Not valid before ten minutes from now.
    let mut claims = valid_claims(&user);
    claims.nbf = now + 600;
    assert_refused(&pair, &mint(&claims), "not yet valid", "not valid yet").await;

    // Another audience or issuer.
    let mut claims = valid_claims(&user);
    claims.aud = "someone-else".into();
    assert_refused(&pair, &mint(&claims), "wrong audience", "audience").await;
    let mut claims = valid_claims(&user);
    claims.iss = "someone-else".into();
    assert_refused(&pair, &mint(&claims), "wrong issuer", "issuer").await;

    // A payload swapped under a valid signature.
    let other = pair.register_user("eve@example.test").await;
    let genuine = mint(&valid_claims(&user));
    let forged_body = mint(&valid_claims(&other));
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged_parts: Vec<&str> = forged_body.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
    assert_refused(&pair, &spliced, "tampered payload", "signature").await;

    // sub and user_id must agree.
    let mut claims = valid_claims(&user);
    claims.sub = other.id.to_string();
    assert_refused(&pair, &mint(&claims), "sub/user_id mismatch", "sub").await;

    // A properly signed token for a session that does not exist.
    let mut claims = valid_claims(&user);
    claims.sid = uuid::Uuid::new_v4();
    assert_refused(&pair, &mint(&claims), "unknown session", "revoked").await;
}

#[tokio::test]
async fn tokens_missing_exp_or_nbf_are_refused() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(harness_key().kid.clone());
    for missing in ["exp", "nbf"] {
        let mut claims = serde_json::to_value(valid_claims(&user)).unwrap();
        claims.as_object_mut().unwrap().remove(missing);
        let token = harness_key().sign_json(&header, &claims);
        assert_refused(&pair, &token, missing, "").await;
    }
    // exp as a string (jsonwebtoken before 10.3 skipped the check).
    let mut claims = serde_json::to_value(valid_claims(&user)).unwrap();
    claims["exp"] = serde_json::json!("99999999999");
    let token = harness_key().sign_json(&header, &claims);
    assert_refused(&pair, &token, "exp as a string", "").await;
}

#[tokio::test]
async fn leeway_is_configurable() {
    let pair = spawn_pair_with(PairSettings::default().auth(|s| s.jwt.leeway_seconds = 0)).await;
    let user = pair.register_user("ada@example.test").await;
    let mut claims = valid_claims(&user);
    claims.exp = chrono::Utc::now().timestamp() - 5;
    assert_refused(
        &pair,
        &mint(&claims),
        "expired 5 s ago, no leeway",
        "expired",
    )
    .await;

    // With the default 30 s leeway the same token is still honored.
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut claims = valid_claims(&user);
    claims.exp = chrono::Utc::now().timestamp() - 5;
    assert_eq!(who_am_i(&pair, &mint(&claims)).await.unwrap(), user.id);
}

const SECRET: &str = "a-shared-secret-that-is-long-enough-for-hs256";

#[tokio::test]
async fn hs256_mode_signs_with_the_shared_secret_and_accepts_nothing_else() {
    let pair = spawn_pair_with(PairSettings::default().auth(|s| {
        s.jwt.secret = Some(SECRET.parse().unwrap());
        s.jwt_private_key_file = None;
    }))
    .await;
    let user = pair.register_user("ada@example.test").await;
    let header = jsonwebtoken::decode_header(&user.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert!(header.kid.is_some());
    assert_eq!(who_am_i(&pair, &user.access_token).await.unwrap(), user.id);

    let jwks = pair
        .auth_client()
        .await
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(jwks.keys.is_empty(), "no public keys in HS256 mode");

    assert_eq!(
        who_am_i(&pair, &mint_hs256(&valid_claims(&user), SECRET.as_bytes()))
            .await
            .unwrap(),
        user.id
    );
    let other_secret = mint_hs256(
        &valid_claims(&user),
        b"another-secret-that-is-long-enough-too",
    );
    assert_refused(&pair, &other_secret, "other secret", "signature").await;
    // An EdDSA token, however well signed, is the wrong algorithm here.
    assert_refused(
        &pair,
        &mint(&valid_claims(&user)),
        "EdDSA in HS256 mode",
        "algorithm",
    )
    .await;
    assert_refused(
        &pair,
        &unsigned(&valid_claims(&user)),
        "alg none",
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn previous_keys_stay_valid_during_a_rotation() {
    // The "old" key is the harness key; the service now signs with a new one
    // and publishes both.
    let new_key = TestKey::generate();
    let new_key_file = new_key.write_private_key();
    let old_public = harness_key().write_public_key();
    let (new_key_path, old_public_path) = (new_key_file.path.clone(), old_public.path.clone());
    let pair = spawn_pair_with(PairSettings::default().auth(move |s| {
        s.jwt_private_key_file = Some(new_key_path);
        s.jwt_public_key_files = vec![old_public_path];
    }))
    .await;
    let jwks = pair
        .auth_client()
        .await
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let kids: Vec<&str> = jwks.keys.iter().map(|key| key.kid.as_str()).collect();
    assert_eq!(kids, [new_key.kid.as_str(), harness_key().kid.as_str()]);

    let user = pair.register_user("ada@example.test").await;
    let header = jsonwebtoken::decode_header(&user.access_token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(new_key.kid.as_str()),
        "new tokens use the new key"
    );
    // A token signed with the old key before the rotation still works.
    assert_eq!(
        who_am_i(&pair, &mint(&valid_claims(&user))).await.unwrap(),
        user.id
    );
}
