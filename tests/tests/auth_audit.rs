//! The audit trail records what happened, when and from where, and nothing
//! stored anywhere holds a raw password or token.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::{DisableUserRequest, LoginRequest, LogoutRequest, RefreshRequest};
use ninaivalaigal_tests::{TEST_PASSWORD, auth_rows, bearer, spawn_pair};

/// SHA-256 in hex, as Postgres prints a bytea (aws-lc is already in the tree).
fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[tokio::test]
async fn every_kind_of_event_is_audited_with_time_and_client_address() {
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let pair = spawn_pair().await;
    let admin = pair.register_admin().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    let login = |email: &str, password: &str| LoginRequest {
        email: email.into(),
        password: password.into(),
    };
    auth.login(login(&user.email, "wrong password"))
        .await
        .unwrap_err();
    auth.login(login("nobody@example.test", "wrong password"))
        .await
        .unwrap_err();
    let session = auth
        .login(login(&user.email, TEST_PASSWORD))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    auth.refresh(RefreshRequest {
        refresh_token: user.refresh_token.clone(),
    })
    .await
    .unwrap();
    auth.refresh(RefreshRequest {
        refresh_token: user.refresh_token.clone(),
    })
    .await
    .unwrap_err();
    auth.logout(bearer(LogoutRequest::default(), &session.access_token))
        .await
        .unwrap();
    pair.admin_client()
        .await
        .disable_user(bearer(
            DisableUserRequest {
                email: user.email.clone(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap();

    let events = auth_rows::audit_events(&pair.db).await;
    let names: Vec<&str> = events.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "register",
            // The harness makes the admin as an operator would.
            "admin_role_granted",
            "register",
            "login_failed",
            "login_failed",
            "login_succeeded",
            "refresh",
            "refresh_token_reuse",
            "logout",
            "admin_disable_user",
        ]
    );
    for event in &events {
        assert!(event.occurred_at > started, "{event:?}");
    }
    // The operator command has no client address; every request does.
    let granted = &events[1];
    assert_eq!(granted.client_addr, None);
    assert_eq!(granted.actor_id, None);
    assert_eq!(granted.user_id, Some(admin.id));
    assert!(granted.detail.contains("operator_command"));
    for event in events
        .iter()
        .filter(|event| event.event != "admin_role_granted")
    {
        assert_eq!(event.client_addr.as_deref(), Some("127.0.0.1"), "{event:?}");
    }
    let failed_known = &events[3];
    assert_eq!(failed_known.user_id, Some(user.id));
    assert!(failed_known.detail.contains("wrong_password"));
    let failed_unknown = &events[4];
    assert_eq!(failed_unknown.user_id, None);
    assert_eq!(failed_unknown.email.as_deref(), Some("nobody@example.test"));
    assert!(failed_unknown.detail.contains("unknown_email"));
    let disabled = &events[9];
    assert_eq!(disabled.actor_id, Some(admin.id));
    assert_eq!(disabled.user_id, Some(user.id));
}

#[tokio::test]
async fn no_raw_password_or_token_is_stored() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut auth = pair.auth_client().await;
    let wrong_password = "a wrong but memorable password";
    auth.login(LoginRequest {
        email: user.email.clone(),
        password: wrong_password.into(),
    })
    .await
    .unwrap_err();
    let login = auth
        .login(LoginRequest {
            email: user.email.clone(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let rotated = auth
        .refresh(RefreshRequest {
            refresh_token: login.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    auth.refresh(RefreshRequest {
        refresh_token: login.refresh_token.clone(),
    })
    .await
    .unwrap_err();

    let stored = auth_rows::everything_stored(&pair.db).await;
    assert!(stored.contains("ada@example.test"), "the dump is not empty");
    for secret in [
        TEST_PASSWORD,
        wrong_password,
        &user.access_token,
        &user.refresh_token,
        &login.access_token,
        &login.refresh_token,
        &rotated.access_token,
        &rotated.refresh_token,
    ] {
        assert!(!stored.contains(secret), "a secret is stored in clear");
        // Nor a recognizable piece of a token (its signature part).
        let tail = &secret[secret.len().saturating_sub(20)..];
        assert!(!stored.contains(tail), "part of a secret is stored");
    }
    // The password is a bcrypt hash (the login above verified it); refresh
    // tokens are SHA-256 hashes.
    let hash = auth_rows::password_hash(&pair.db, &user.email).await;
    assert!(
        hash.starts_with("$2b$04$"),
        "bcrypt at the test cost: {hash}"
    );
    assert_eq!(hash.len(), 60);
    let expected = sha256_hex(rotated.refresh_token.as_bytes());
    assert!(
        stored.contains(&expected),
        "refresh tokens are stored as SHA-256"
    );
}
