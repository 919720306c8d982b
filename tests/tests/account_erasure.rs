//! Erasure of an account, end to end: DeleteAccount needs the password
//! again, erases only the caller, returns a receipt, ends every session at
//! once, and leaves nothing of the user in any table (every table of the
//! catalog is read, so a table added later is checked too); admin deletion
//! takes the same path.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::auth_v1::{
    DeleteAccountRequest, DeleteUserRequest, LoginRequest, WhoAmIRequest,
};
use ninaivalaigal_tests::{TestPair, TestUser, bearer, cluster::Role, eventually, spawn_pair};
use serde_json::{Value, json};
use tonic::{Code, Status};

const MARKER: &str = "erase-me-7f3a";

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    text: String,
}

/// Every row of every table in the schema, as `(table, row as JSON)`, read
/// as the tables' owner with row security lifted in a transaction that is
/// rolled back. The tables come from the catalog, not from a list here.
async fn every_row(pair: &TestPair) -> Vec<(String, Value)> {
    let mut conn = pair.db.connect(Role::Owner).await;
    conn.begin_test_transaction().await.unwrap();
    let tables: Vec<TextRow> = diesel::sql_query(
        "SELECT c.relname AS text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 8, "too few tables found");
    let mut rows = Vec::new();
    for table in tables.iter().map(|t| &t.text) {
        // Names from the catalog, quoted.
        conn.batch_execute(&format!(
            "ALTER TABLE \"{table}\" NO FORCE ROW LEVEL SECURITY"
        ))
        .await
        .unwrap();
        let found: Vec<TextRow> = diesel::sql_query(format!(
            "SELECT row_to_json(t)::text AS text FROM \"{table}\" t"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        for row in found {
            rows.push((table.clone(), serde_json::from_str(&row.text).unwrap()));
        }
    }
    rows
}

/// Alice with a context, memories, two sessions and audit rows that name
/// her; Bob with data of his own.
async fn arrange(pair: &TestPair) -> (TestUser, TestUser) {
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    let memory = pair.memory_as(&alice).await;
    memory
        .create_context(
            &format!("{MARKER}-project"),
            &format!("{MARKER} description"),
        )
        .await
        .unwrap();
    for i in 0..3 {
        memory
            .remember(
                &format!("{MARKER}-project"),
                "note",
                json!({"secret": MARKER, "i": i}),
            )
            .await
            .unwrap();
    }
    let mut auth = pair.auth_client().await;
    auth.login(LoginRequest {
        email: alice.email.clone(),
        password: alice.password.clone(),
    })
    .await
    .unwrap();
    auth.login(LoginRequest {
        email: alice.email.clone(),
        password: "wrong password".into(),
    })
    .await
    .unwrap_err();
    let bobs = pair.memory_as(&bob).await;
    bobs.create_context("bobs", "").await.unwrap();
    bobs.remember("bobs", "note", json!({"bob": 1}))
        .await
        .unwrap();
    (alice, bob)
}

async fn delete_account(
    pair: &TestPair,
    user: &TestUser,
    password: &str,
) -> Result<ninaivalaigal::auth_v1::ErasureReceipt, Status> {
    let request = DeleteAccountRequest {
        password: password.into(),
    };
    Ok(pair
        .auth_client()
        .await
        .delete_account(bearer(request, &user.access_token))
        .await?
        .into_inner()
        .receipt
        .unwrap())
}

/// Checks that no row of any table holds anything of `user` beyond its id
/// in the audit trail and the revocation list.
fn nothing_of(rows: &[(String, Value)], user: &TestUser, password_hash: &str) {
    for (table, row) in rows {
        let text = row.to_string();
        for secret in [
            user.email.as_str(),
            MARKER,
            password_hash,
            &user.refresh_token,
        ] {
            assert!(
                !text.contains(secret),
                "{table} still holds {secret:?}: {text}"
            );
        }
        let Value::Object(columns) = row else {
            panic!("{table}: {row}");
        };
        let names_user = columns.iter().any(|(column, value)| {
            (column.ends_with("owner_id") || column.ends_with("user_id") || column == "actor_id")
                && value.as_i64() == Some(user.id)
        });
        if names_user {
            assert!(
                table == "audit_events" || table == "revoked_sessions",
                "{table} still has a row of user {}: {text}",
                user.id
            );
        }
        if table == "audit_events" && names_user && columns["user_id"].as_i64() == Some(user.id) {
            assert!(columns["email"].is_null(), "{text}");
            assert!(columns["client_addr"].is_null(), "{text}");
            let detail = columns["detail"].as_object().unwrap();
            assert!(
                detail
                    .keys()
                    .all(|key| ["contexts", "memories", "sessions", "refresh_tokens"]
                        .contains(&key.as_str())),
                "{text}"
            );
        }
    }
}

async fn password_hash(pair: &TestPair, user: &TestUser) -> String {
    let mut conn = pair.db.connect(Role::Auth).await;
    let row: TextRow = diesel::sql_query("SELECT password_hash AS text FROM users WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(user.id)
        .get_result(&mut conn)
        .await
        .unwrap();
    row.text
}

#[tokio::test]
async fn a_user_erases_their_account_and_nothing_of_it_remains_anywhere() {
    let pair = spawn_pair().await;
    let (alice, bob) = arrange(&pair).await;
    let hash = password_hash(&pair, &alice).await;

    // A wrong password, or Bob's token with Alice's password, erase nothing.
    let wrong = delete_account(&pair, &alice, "not the password")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    assert!(wrong.message().contains("nothing was deleted"), "{wrong:?}");
    let empty = delete_account(&pair, &alice, "").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    let bobs_try = delete_account(&pair, &bob, &alice.password.replace("correct", "c0rrect")).await;
    assert_eq!(bobs_try.unwrap_err().code(), Code::PermissionDenied);
    let memory = pair.memory_as(&alice).await;
    assert_eq!(
        memory
            .recall_context(&format!("{MARKER}-project"))
            .await
            .unwrap()
            .len(),
        3
    );

    let receipt = delete_account(&pair, &alice, &alice.password)
        .await
        .unwrap();
    assert_eq!(receipt.user_id, alice.id);
    assert_eq!(
        (
            receipt.contexts,
            receipt.memories,
            receipt.sessions,
            receipt.refresh_tokens
        ),
        (1, 3, 2, 2)
    );
    assert!(receipt.audit_events_scrubbed >= 3, "{receipt:?}");
    assert!(receipt.erase_time.is_some());

    // Her tokens are refused at once by the auth-service, and by the
    // memory-service within its revocation poll.
    let mut auth = pair.auth_client().await;
    let who = auth
        .who_am_i(bearer(WhoAmIRequest {}, &alice.access_token))
        .await
        .unwrap_err();
    assert_eq!(who.code(), Code::Unauthenticated);
    eventually(
        "the memory-service to refuse the erased user's token",
        Duration::from_secs(10),
        async || {
            memory.context_names().await.err().map(|s| s.code()) == Some(Code::Unauthenticated)
        },
    )
    .await;

    let rows = every_row(&pair).await;
    nothing_of(&rows, &alice, &hash);
    // The audit trail keeps that it happened, by id.
    assert!(rows.iter().any(|(table, row)| table == "audit_events"
        && row["event"] == "account_deleted"
        && row["user_id"] == alice.id));
    // Bob's data is all there.
    let bobs = pair.memory_as(&bob).await;
    assert_eq!(bobs.recall_context("bobs").await.unwrap().len(), 1);
    assert!(
        rows.iter()
            .any(|(table, row)| table == "users" && row["id"] == bob.id)
    );
    // She cannot log in (checked after the scan: the attempt is a new
    // audit row about an unknown email, as for anyone's typo).
    let login = auth
        .login(LoginRequest {
            email: alice.email.clone(),
            password: alice.password.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(login.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn admin_deletion_takes_the_same_path_and_the_last_admin_cannot_erase_itself() {
    let pair = spawn_pair().await;
    let (alice, bob) = arrange(&pair).await;
    let admin = pair.register_admin().await;
    let hash = password_hash(&pair, &alice).await;
    let receipt = pair
        .admin_client()
        .await
        .delete_user(bearer(
            DeleteUserRequest {
                email: alice.email.clone(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(
        (
            receipt.user_id,
            receipt.contexts,
            receipt.memories,
            receipt.sessions
        ),
        (alice.id, 1, 3, 2)
    );
    let rows = every_row(&pair).await;
    nothing_of(&rows, &alice, &hash);
    assert!(rows.iter().any(|(table, row)| table == "audit_events"
        && row["event"] == "admin_delete_user"
        && row["user_id"] == alice.id
        && row["actor_id"] == admin.id
        && row["email"].is_null()));
    assert_eq!(
        pair.memory_as(&bob)
            .await
            .recall_context("bobs")
            .await
            .unwrap()
            .len(),
        1
    );

    let last = delete_account(&pair, &admin, &admin.password)
        .await
        .unwrap_err();
    assert_eq!(last.code(), Code::FailedPrecondition, "{last:?}");
    assert!(
        last.message().contains("last enabled administrator"),
        "{last:?}"
    );
}
