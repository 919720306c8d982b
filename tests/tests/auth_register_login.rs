//! Register, Login, WhoAmI and GetJwks: the success paths and every status a
//! client can get from them.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::{
    auth_v1::{GetJwksRequest, LoginRequest, RegisterRequest, Role, WhoAmIRequest},
    token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenVerifier},
};
use ninaivalaigal_tests::{TEST_PASSWORD, bearer, keys::harness_key, spawn_pair};
use std::time::Duration;
use tonic::Code;

fn register(email: &str, password: &str, name: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.into(),
        password: password.into(),
        name: name.into(),
    }
}

fn login(email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn register_returns_the_user_and_a_working_session() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let response = auth
        .register(register("ada@example.test", TEST_PASSWORD, "Ada"))
        .await
        .unwrap()
        .into_inner();
    let user = response.user.unwrap();
    let session = response.session.unwrap();
    assert!(user.id > 0);
    assert_eq!(user.email, "ada@example.test");
    assert_eq!(user.name, "Ada");
    assert_eq!(user.account_type, "individual");
    assert_eq!(user.role(), Role::User);
    assert!(!user.disabled);
    assert!(user.create_time.is_some());
    assert!(!session.access_token.is_empty());
    assert!(!session.refresh_token.is_empty());
    let access_expiry = session.access_token_expire_time.unwrap().seconds;
    let now = chrono::Utc::now().timestamp();
    assert!(
        (access_expiry - now - 168 * 3600).abs() < 60,
        "default lifetime is 168 h"
    );
    let refresh_expiry = session.refresh_token_expire_time.unwrap().seconds;
    assert!(
        (refresh_expiry - now - 30 * 86_400).abs() < 60,
        "default refresh lifetime is 30 days"
    );

    let me = auth
        .who_am_i(bearer(WhoAmIRequest {}, &session.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user.unwrap().id, user.id);
    assert_eq!(me.session_id, session.session_id);
    assert_eq!(me.access_token_expire_time.unwrap().seconds, access_expiry);
}

#[tokio::test]
async fn emails_are_trimmed_and_unique_regardless_of_case() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let user = auth
        .register(register("  Ada@Example.TEST ", TEST_PASSWORD, "Ada"))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.email, "ada@example.test");

    let status = auth
        .register(register("ADA@example.test", TEST_PASSWORD, "Other Ada"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("ada@example.test"), "{status:?}");

    // Logging in works with any spelling of the address.
    auth.login(login(" ADA@EXAMPLE.test", TEST_PASSWORD))
        .await
        .unwrap();
}

#[tokio::test]
async fn register_refuses_input_outside_the_policy() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let cases = [
        (register("not-an-email", TEST_PASSWORD, "Ada"), "email"),
        (register("", TEST_PASSWORD, "Ada"), "email"),
        (register("ada@example.test", TEST_PASSWORD, "   "), "name"),
        (register("ada@example.test", "short", "Ada"), "at least 8"),
        (
            register("ada@example.test", &"x".repeat(73), "Ada"),
            "72 bytes",
        ),
        // 37 two-byte characters: few characters, too many bytes.
        (
            register("ada@example.test", &"é".repeat(37), "Ada"),
            "72 bytes",
        ),
    ];
    for (request, expected) in cases {
        let status = auth.register(request.clone()).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{request:?}: {status:?}"
        );
        assert!(status.message().contains(expected), "{status:?}");
    }
    // Exactly 72 bytes is allowed, and every byte counts.
    let long = "y".repeat(72);
    auth.register(register("long@example.test", &long, "Long"))
        .await
        .unwrap();
    auth.login(login("long@example.test", &long)).await.unwrap();
    let status = auth
        .login(login("long@example.test", &"y".repeat(71)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // bcrypt alone would accept this: it reads only 72 bytes.
    let status = auth
        .login(login("long@example.test", &format!("{long}z")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn login_returns_a_new_session_for_the_same_user() {
    let pair = spawn_pair().await;
    let registered = pair.register_user("grace@example.test").await;
    let mut auth = pair.auth_client().await;
    let response = auth
        .login(login("grace@example.test", TEST_PASSWORD))
        .await
        .unwrap()
        .into_inner();
    let user = response.user.unwrap();
    let session = response.session.unwrap();
    assert_eq!(user.id, registered.id);
    assert_ne!(session.session_id, registered.session_id);
    assert_ne!(session.refresh_token, registered.refresh_token);
    let me = auth
        .who_am_i(bearer(WhoAmIRequest {}, &session.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.session_id, session.session_id);
    // The first session still works too.
    auth.who_am_i(bearer(WhoAmIRequest {}, &registered.access_token))
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let pair = spawn_pair().await;
    pair.register_user("grace@example.test").await;
    let mut auth = pair.auth_client().await;
    let wrong_password = auth
        .login(login("grace@example.test", "not the password"))
        .await
        .unwrap_err();
    let unknown_email = auth
        .login(login("nobody@example.test", "not the password"))
        .await
        .unwrap_err();
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(unknown_email.code(), wrong_password.code());
    assert_eq!(unknown_email.message(), wrong_password.message());
    assert_eq!(wrong_password.message(), "email or password is incorrect");
}

#[tokio::test]
async fn login_with_a_malformed_email_is_invalid_argument() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let status = auth.login(login("   ", TEST_PASSWORD)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    pair.shutdown().await;
}

#[tokio::test]
async fn who_am_i_needs_a_bearer_token() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let status = auth.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{status:?}");

    let mut request = tonic::Request::new(WhoAmIRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let status = auth.who_am_i(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let status = auth
        .who_am_i(bearer(WhoAmIRequest {}, "not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn get_jwks_serves_the_public_key_that_verifies_issued_tokens() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    let jwks = auth.get_jwks(GetJwksRequest {}).await.unwrap().into_inner();
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (
            key.kty.as_str(),
            key.crv.as_str(),
            key.alg.as_str(),
            key.r#use.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );
    assert_eq!(key.kid, harness_key().kid);
    assert_eq!(key.x, harness_key().x);

    // A verifier that holds only the JWKS accepts the token and reads the
    // documented claims.
    let verifier =
        TokenVerifier::ed25519(DEFAULT_ISSUER, DEFAULT_AUDIENCE, Duration::from_secs(30));
    verifier
        .set_ed25519_keys([(key.kid.as_str(), key.x.as_str())])
        .unwrap();
    let claims = verifier.verify(&user.access_token).unwrap();
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.user_id, user.id);
    assert_eq!(claims.email, "ada@example.test");
    assert_eq!(claims.account_type, "individual");
    assert_eq!(claims.role, "user");
    assert_eq!(claims.sid.to_string(), user.session_id);
    assert_eq!(claims.iss, DEFAULT_ISSUER);
    assert_eq!(claims.aud, DEFAULT_AUDIENCE);
    assert_eq!(claims.exp - claims.iat, 168 * 3600);
    assert!(claims.nbf <= claims.iat);
    let header = jsonwebtoken::decode_header(&user.access_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
}

#[tokio::test]
async fn an_account_the_operator_made_admin_is_one() {
    let pair = spawn_pair().await;
    let admin = pair.register_admin().await;
    let mut auth = pair.auth_client().await;
    let me = auth
        .who_am_i(bearer(WhoAmIRequest {}, &admin.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user.unwrap().role(), Role::Admin);
}
