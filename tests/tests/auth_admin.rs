//! AdminService: who may use it, listing, disabling and deleting accounts,
//! and what happens to the tokens of an account that is disabled or deleted.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};
use ninaivalaigal::auth_v1::{
    DeleteUserRequest, DisableUserRequest, ListUsersRequest, LoginRequest, RefreshRequest,
    WhoAmIRequest,
};
use ninaivalaigal_tests::{
    TEST_PASSWORD, TestPair, auth_rows, bearer, cluster::Role, db::set_rls_user, spawn_pair,
};
use tonic::Code;

fn list(page_size: i32, page_token: &str) -> ListUsersRequest {
    ListUsersRequest {
        page_size,
        page_token: page_token.into(),
    }
}

async fn login(pair: &TestPair, email: &str) -> Result<(), tonic::Status> {
    pair.auth_client()
        .await
        .login(LoginRequest {
            email: email.into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn only_admins_may_use_the_admin_service() {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let mut admin = pair.admin_client().await;

    let status = admin.list_users(list(0, "")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = admin
        .list_users(bearer(list(0, ""), &user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("admin"), "{status:?}");
    let status = admin
        .disable_user(bearer(
            DisableUserRequest {
                email: user.email.clone(),
            },
            &user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = admin
        .delete_user(bearer(
            DeleteUserRequest {
                email: user.email.clone(),
            },
            &user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A token claiming role admin is not enough: the account's role is checked.
    let mut claims = ninaivalaigal_tests::keys::claims_for(
        user.id,
        &user.email,
        user.session_id.parse().unwrap(),
    );
    claims.role = "admin".into();
    let forged = ninaivalaigal_tests::keys::mint(&claims);
    let status = admin
        .list_users(bearer(list(0, ""), &forged))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn list_users_pages_oldest_first() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let mut emails = vec![admin_user.email.clone()];
    for n in 0..4 {
        emails.push(
            pair.register_user(&format!("user{n}@example.test"))
                .await
                .email,
        );
    }
    let mut admin = pair.admin_client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_users(bearer(list(2, &token), &admin_user.access_token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.users.len() <= 2);
        seen.extend(page.users.into_iter().map(|user| user.email));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, emails);
    assert_eq!(pages, 3);

    let all = admin
        .list_users(bearer(list(0, ""), &admin_user.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.users.len(), 5, "default page size covers them");
    assert!(all.next_page_token.is_empty());

    let status = admin
        .list_users(bearer(list(-1, ""), &admin_user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = admin
        .list_users(bearer(list(2, "bogus"), &admin_user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_or_refresh_and_its_tokens_are_revoked() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let user = pair.register_user("ada@example.test").await;
    let bystander = pair.register_user("grace@example.test").await;
    let mut admin = pair.admin_client().await;

    let disabled = admin
        .disable_user(bearer(
            DisableUserRequest {
                email: " ADA@example.test".into(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.id, user.id);

    let status = login(&pair, &user.email).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("disabled"), "{status:?}");
    // Without the password nobody learns that the account is disabled.
    let status = pair
        .auth_client()
        .await
        .login(LoginRequest {
            email: user.email.clone(),
            password: "wrong password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut auth = pair.auth_client().await;
    let status = auth
        .refresh(RefreshRequest {
            refresh_token: user.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = auth
        .who_am_i(bearer(WhoAmIRequest {}, &user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(auth_rows::is_revoked(&pair.db, &user.session_id).await);

    // Other accounts are unaffected.
    assert!(!auth_rows::is_revoked(&pair.db, &bystander.session_id).await);
    login(&pair, &bystander.email).await.unwrap();

    // Listing shows the flag; disabling again is harmless.
    let listed = admin
        .list_users(bearer(list(0, ""), &admin_user.access_token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.users.iter().any(|u| u.id == user.id && u.disabled));
    admin
        .disable_user(bearer(
            DisableUserRequest {
                email: user.email.clone(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deleted_account_is_gone_with_its_data_and_its_tokens_stay_revoked() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let user = pair.register_user("ada@example.test").await;
    let context_owner_id = user.id;
    add_recording_context(&pair, context_owner_id).await;
    assert_eq!(count_contexts(&pair, context_owner_id).await, 1);

    let mut admin = pair.admin_client().await;
    admin
        .delete_user(bearer(
            DeleteUserRequest {
                email: user.email.clone(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap();

    // The revocation outlives the account (no foreign key).
    let revoked = auth_rows::revoked_sessions(&pair.db).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].user_id, user.id);
    assert_eq!(revoked[0].session_id.to_string(), user.session_id);
    assert_eq!(
        count_contexts(&pair, context_owner_id).await,
        0,
        "data deleted too"
    );

    let status = login(&pair, &user.email).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = pair
        .auth_client()
        .await
        .who_am_i(bearer(WhoAmIRequest {}, &user.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let listed = admin
        .list_users(bearer(list(0, ""), &admin_user.access_token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.users.iter().all(|u| u.id != user.id));

    // Deleting again: nothing to delete.
    let status = admin
        .delete_user(bearer(
            DeleteUserRequest {
                email: user.email.clone(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The address is free again.
    pair.register_user("ada@example.test").await;
}

#[tokio::test]
async fn admins_get_clear_errors_for_unknown_malformed_and_own_accounts() {
    let pair = spawn_pair().await;
    let admin_user = pair.register_admin().await;
    let mut admin = pair.admin_client().await;
    for email in ["nobody@example.test", "not-an-email"] {
        let status = admin
            .disable_user(bearer(
                DisableUserRequest {
                    email: email.into(),
                },
                &admin_user.access_token,
            ))
            .await
            .unwrap_err();
        let expected = if email.contains('@') {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        assert_eq!(status.code(), expected, "{email}: {status:?}");
    }
    let status = admin
        .disable_user(bearer(
            DisableUserRequest {
                email: admin_user.email.clone(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = admin
        .delete_user(bearer(
            DeleteUserRequest {
                email: admin_user.email.clone(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = admin
        .delete_user(bearer(
            DeleteUserRequest {
                email: "nobody@example.test".into(),
            },
            &admin_user.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// Adds a recording context for `owner_id` the way the memory-service
/// would: as its role, with the RLS user set for the transaction.
async fn add_recording_context(pair: &TestPair, owner_id: i64) {
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction(async |conn| {
        set_rls_user(conn, owner_id).await?;
        diesel::sql_query("INSERT INTO recording_contexts (owner_id, name) VALUES ($1, 'p')")
            .bind::<BigInt, _>(owner_id)
            .execute(conn)
            .await?;
        Ok::<_, diesel::result::Error>(())
    })
    .await
    .unwrap();
}

async fn count_contexts(pair: &TestPair, owner_id: i64) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction(async |conn| {
        set_rls_user(conn, owner_id).await?;
        let count: Count = diesel::sql_query("SELECT count(*) AS count FROM recording_contexts")
            .get_result(conn)
            .await?;
        Ok::<_, diesel::result::Error>(count.count)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_login_racing_a_disable_gets_no_session() {
    use diesel_async::SimpleAsyncConnection;

    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    // An admin's DisableUser in flight: it holds the account row.
    let mut admin_conn = pair.db.connect(Role::Auth).await;
    admin_conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind::<BigInt, _>(user.id)
        .execute(&mut admin_conn)
        .await
        .unwrap();

    // The login checks the password, then waits for the account row.
    let login = {
        let mut auth = pair.auth_client().await;
        let email = user.email.clone();
        tokio::spawn(async move {
            auth.login(LoginRequest {
                email,
                password: TEST_PASSWORD.into(),
            })
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!login.is_finished(), "the login waits for the account row");

    diesel::sql_query("UPDATE users SET disabled_at = now() WHERE id = $1")
        .bind::<BigInt, _>(user.id)
        .execute(&mut admin_conn)
        .await
        .unwrap();
    admin_conn.batch_execute("COMMIT").await.unwrap();

    let status = login.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let sessions: Count =
        diesel::sql_query("SELECT count(*) AS count FROM sessions WHERE user_id = $1")
            .bind::<BigInt, _>(user.id)
            .get_result(&mut admin_conn)
            .await
            .unwrap();
    assert_eq!(sessions.count, 1, "only the session from Register");
}
