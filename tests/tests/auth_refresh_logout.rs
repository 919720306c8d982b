//! Refresh (rotation, single use, reuse detection, concurrency, expiry) and
//! Logout (by access token or by refresh token), with the revocation rows the
//! memory-service reads.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::{LogoutRequest, RefreshRequest, WhoAmIRequest};
use ninaivalaigal_tests::{TestPair, auth_rows, bearer, spawn_pair};
use tonic::Code;

fn refresh(token: &str) -> RefreshRequest {
    RefreshRequest {
        refresh_token: token.into(),
    }
}

async fn who_am_i(pair: &TestPair, token: &str) -> Result<(), tonic::Status> {
    pair.auth_client()
        .await
        .who_am_i(bearer(WhoAmIRequest {}, token))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn refresh_rotates_both_tokens_within_the_session() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    let session = auth
        .refresh(refresh(&user.refresh_token))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(
        session.session_id, user.session_id,
        "same session, new tokens"
    );
    assert_ne!(session.refresh_token, user.refresh_token);
    assert!(session.access_token_expire_time.is_some());
    who_am_i(&pair, &session.access_token).await.unwrap();

    // The new refresh token works once more, and so on.
    let next = auth
        .refresh(refresh(&session.refresh_token))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_ne!(next.refresh_token, session.refresh_token);
    who_am_i(&pair, &next.access_token).await.unwrap();
    assert!(auth_rows::revoked_sessions(&pair.db).await.is_empty());
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let other_session = pair.register_user("grace@example.test").await;
    let mut auth = pair.auth_client().await;
    let rotated = auth
        .refresh(refresh(&user.refresh_token))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();

    // An attacker (or a confused client) presents the spent token.
    let status = auth
        .refresh(refresh(&user.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("already used"), "{status:?}");

    // Everything issued in that session is now dead...
    let status = auth
        .refresh(refresh(&rotated.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    for token in [&user.access_token, &rotated.access_token] {
        let status = who_am_i(&pair, token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().contains("revoked"), "{status:?}");
    }
    // ...and listed for the memory-service, until its newest access token expires.
    let revoked = auth_rows::revoked_sessions(&pair.db).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].session_id.to_string(), user.session_id);
    assert_eq!(revoked[0].user_id, user.id);
    assert_eq!(
        revoked[0].access_expires_at.timestamp(),
        rotated.access_token_expire_time.unwrap().seconds
    );
    // Other sessions are untouched.
    who_am_i(&pair, &other_session.access_token).await.unwrap();
    let events = auth_rows::audit_events(&pair.db).await;
    assert!(
        events
            .iter()
            .any(|event| event.event == "refresh_token_reuse" && event.user_id == Some(user.id))
    );
}

#[tokio::test]
async fn of_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let pair = spawn_pair().await;
    for round in 0..3 {
        let user = pair
            .register_user(&format!("racer{round}@example.test"))
            .await;
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(pair.auth_client().await);
        }
        let attempts = clients.into_iter().map(|mut client| {
            let token = user.refresh_token.clone();
            tokio::spawn(async move { client.refresh(refresh(&token)).await })
        });
        let results = futures_join(attempts).await;
        let succeeded = results.iter().filter(|result| result.is_ok()).count();
        assert_eq!(succeeded, 1, "round {round}: {results:?}");
        for result in results.iter().filter_map(|result| result.as_ref().err()) {
            assert_eq!(result.code(), Code::Unauthenticated);
        }
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test]
async fn unknown_empty_and_expired_refresh_tokens_are_refused() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let status = auth.refresh(refresh("")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = auth
        .refresh(refresh("no-such-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("not valid"), "{status:?}");

    let user = pair.register_user("ada@example.test").await;
    auth_rows::expire_session(&pair.db, &user.session_id).await;
    let status = auth
        .refresh(refresh(&user.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn logout_with_the_access_token_revokes_that_session_only() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    let second = auth
        .login(ninaivalaigal::auth_v1::LoginRequest {
            email: user.email.clone(),
            password: user.password.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();

    auth.logout(bearer(LogoutRequest::default(), &user.access_token))
        .await
        .unwrap();

    let status = who_am_i(&pair, &user.access_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = auth
        .refresh(refresh(&user.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(auth_rows::is_revoked(&pair.db, &user.session_id).await);
    // The other login of the same account goes on.
    who_am_i(&pair, &second.access_token).await.unwrap();
    assert!(!auth_rows::is_revoked(&pair.db, &second.session_id).await);
}

#[tokio::test]
async fn logout_with_the_refresh_token_revokes_its_session() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    auth.logout(LogoutRequest {
        refresh_token: user.refresh_token.clone(),
    })
    .await
    .unwrap();
    assert!(auth_rows::is_revoked(&pair.db, &user.session_id).await);
    let status = who_am_i(&pair, &user.access_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Logging out again with the refresh token is harmless.
    auth.logout(LogoutRequest {
        refresh_token: user.refresh_token.clone(),
    })
    .await
    .unwrap();
    assert_eq!(auth_rows::revoked_sessions(&pair.db).await.len(), 1);
}

#[tokio::test]
async fn logout_needs_a_token() {
    let pair = spawn_pair().await;
    let mut auth = pair.auth_client().await;
    let status = auth.logout(LogoutRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("refresh token"), "{status:?}");
    let status = auth
        .logout(LogoutRequest {
            refresh_token: "unknown".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = auth
        .logout(bearer(LogoutRequest::default(), "not.a.token"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
