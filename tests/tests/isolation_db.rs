//! Isolation at the database level, connected as the memory-service's own
//! role: a transaction sees only the rows of the user it names, a
//! transaction that names nobody sees nothing, rows owned by someone else
//! cannot be written, the role can bypass none of it, and the policies are
//! index conditions rather than per-row filters.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Text},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal_tests::{TestPair, cluster::Role, db::set_rls_user, spawn_pair};
use serde_json::json;

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

async fn set_user(conn: &mut AsyncPgConnection, user_id: i64) {
    set_rls_user(conn, user_id).await.unwrap();
}

/// Alice and Bob, each with a context "same" holding two memories.
async fn arrange() -> (TestPair, i64, i64) {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    for user in [&alice, &bob] {
        let memory = pair.memory_as(user).await;
        memory.create_context("same", "").await.unwrap();
        for i in 0..2 {
            memory
                .remember("same", "note", json!({"i": i}))
                .await
                .unwrap();
        }
    }
    (pair, alice.id, bob.id)
}

#[tokio::test]
async fn a_transaction_sees_only_the_rows_of_the_user_it_names() {
    let (pair, alice, bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_user(conn, bob).await;
        let of_alice = format!("SELECT count(*) AS n FROM memories WHERE owner_id = {alice}");
        assert_eq!(count(conn, &of_alice).await, 0);
        let of_alice =
            format!("SELECT count(*) AS n FROM recording_contexts WHERE owner_id = {alice}");
        assert_eq!(count(conn, &of_alice).await, 0);
        assert_eq!(count(conn, "SELECT count(*) AS n FROM memories").await, 2);
        assert_eq!(
            count(conn, "SELECT count(*) AS n FROM recording_contexts").await,
            1
        );
        // Changing or deleting Alice's rows finds nothing to change.
        let updated = diesel::sql_query(format!(
            "UPDATE recording_contexts SET description = 'mine now' WHERE owner_id = {alice}"
        ))
        .execute(conn)
        .await?;
        assert_eq!(updated, 0);
        let deleted = diesel::sql_query(format!("DELETE FROM memories WHERE owner_id = {alice}"))
            .execute(conn)
            .await?;
        assert_eq!(deleted, 0);
        Ok(())
    })
    .await
    .unwrap();
    // Alice's rows are all still there.
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_user(conn, alice).await;
        assert_eq!(count(conn, "SELECT count(*) AS n FROM memories").await, 2);
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn without_a_user_nothing_is_visible_and_the_setting_ends_with_the_transaction() {
    let (pair, alice, _bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;
    for table in ["memories", "recording_contexts"] {
        let sql = format!("SELECT count(*) AS n FROM {table}");
        assert_eq!(
            count(&mut conn, &sql).await,
            0,
            "{table} outside a transaction"
        );
    }
    // Set in one transaction, gone in the next one on the same connection.
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_user(conn, alice).await;
        assert_eq!(count(conn, "SELECT count(*) AS n FROM memories").await, 2);
        Ok(())
    })
    .await
    .unwrap();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        assert_eq!(count(conn, "SELECT count(*) AS n FROM memories").await, 0);
        assert_eq!(
            count(conn, "SELECT count(*) AS n FROM recording_contexts").await,
            0
        );
        // An empty setting is no user either.
        conn.batch_execute("SET LOCAL app.current_user_id = ''")
            .await?;
        assert_eq!(count(conn, "SELECT count(*) AS n FROM memories").await, 0);
        Ok(())
    })
    .await
    .unwrap();
    // Without a user nothing can be written either.
    let refused = conn
        .batch_execute(&format!(
            "INSERT INTO recording_contexts (owner_id, name) VALUES ({alice}, 'sneaky')"
        ))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
}

#[tokio::test]
async fn rows_owned_by_someone_else_cannot_be_written() {
    let (pair, alice, bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;

    // Bob inserts a context owned by Alice.
    let result = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_user(conn, bob).await;
            diesel::sql_query(format!(
                "INSERT INTO recording_contexts (owner_id, name) VALUES ({alice}, 'planted')"
            ))
            .execute(conn)
            .await
        })
        .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");

    // Bob inserts a memory owned by Alice (into his own context's id).
    let result = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_user(conn, bob).await;
            diesel::sql_query(format!(
                "INSERT INTO memories (owner_id, context_id, memory_type, data) \
                 SELECT {alice}, id, 'note', '{{}}' FROM recording_contexts LIMIT 1"
            ))
            .execute(conn)
            .await
        })
        .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");

    // Bob gives his own row to Alice.
    let result = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_user(conn, bob).await;
            diesel::sql_query(format!("UPDATE recording_contexts SET owner_id = {alice}"))
                .execute(conn)
                .await
        })
        .await;
    let error = result.unwrap_err().to_string();
    // On Citus (deploy/citus/test.sh) the coordinator refuses any change of
    // the distribution column before a policy is asked; a worker's policy
    // refuses it there (tests/citus_workers.rs).
    assert!(
        error.contains("row-level security")
            || error.contains("modifying the partition value of rows is not allowed"),
        "{error}"
    );

    // Alice still has exactly her own context.
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_user(conn, alice).await;
        assert_eq!(
            count(conn, "SELECT count(*) AS n FROM recording_contexts").await,
            1
        );
        Ok(())
    })
    .await
    .unwrap();
}

#[derive(QueryableByName)]
struct RoleFacts {
    #[diesel(sql_type = Bool)]
    rolbypassrls: bool,
    #[diesel(sql_type = Bool)]
    rolsuper: bool,
    #[diesel(sql_type = BigInt)]
    owned: i64,
    #[diesel(sql_type = BigInt)]
    unforced: i64,
}

#[tokio::test]
async fn the_service_role_owns_nothing_and_cannot_bypass_row_security() {
    let (pair, _alice, _bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;
    let facts: RoleFacts = diesel::sql_query(
        "SELECT r.rolbypassrls, r.rolsuper,
                (SELECT count(*) FROM pg_class c
                  WHERE c.relowner = r.oid AND c.relnamespace = 'public'::regnamespace) AS owned,
                (SELECT count(*) FROM pg_class c
                  WHERE c.relname IN ('recording_contexts', 'memories', 'memory_usage', 'users')
                    AND c.relnamespace = 'public'::regnamespace
                    AND NOT (c.relrowsecurity AND c.relforcerowsecurity)) AS unforced
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(
        !facts.rolbypassrls,
        "ninaivalaigal_memory must not have BYPASSRLS"
    );
    assert!(!facts.rolsuper);
    assert_eq!(facts.owned, 0, "ninaivalaigal_memory must own no table");
    assert_eq!(
        facts.unforced, 0,
        "every user-data table forces row security"
    );
    let user: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_roles WHERE rolname = current_user AND rolname = 'ninaivalaigal_memory'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(user.n, 1);
}

#[tokio::test]
async fn the_service_role_cannot_read_accounts_or_more_of_the_revocation_list_than_it_needs() {
    let (pair, alice, _bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;
    // Not even its own caller's account row, and never a password hash:
    // with a user set or not, the table is out of reach.
    for sql in [
        "SELECT count(*) AS n FROM users",
        "SELECT count(*) AS n FROM users WHERE password_hash <> ''",
        "SELECT count(*) AS n FROM revoked_sessions WHERE user_id > 0",
        "SELECT count(*) AS n FROM sessions",
        "SELECT count(*) AS n FROM refresh_tokens",
        "SELECT count(*) AS n FROM audit_events",
    ] {
        let refused = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                set_user(conn, alice).await;
                diesel::sql_query(sql).get_result::<Count>(conn).await
            })
            .await
            .expect_err(sql)
            .to_string();
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
    // What revocation polling needs still works.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM (SELECT session_id, access_expires_at FROM revoked_sessions) r"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_policies_are_index_conditions_on_the_owner() {
    let (pair, alice, _bob) = arrange().await;
    let mut conn = pair.db.connect(Role::Memory).await;
    let plans = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_user(conn, alice).await;
            // Tiny tables would be scanned whatever the policy; ask for the
            // plan the policy allows when an index is worth using.
            conn.batch_execute("SET LOCAL enable_seqscan = off").await?;
            let mut plans = Vec::new();
            for sql in [
                "EXPLAIN SELECT * FROM memories ORDER BY created_at DESC, id DESC LIMIT 10",
                "EXPLAIN SELECT * FROM recording_contexts WHERE name = 'same'",
            ] {
                let lines: Vec<Line> = diesel::sql_query(sql).load(conn).await?;
                plans.push(
                    lines
                        .into_iter()
                        .map(|l| l.line)
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            Ok(plans)
        })
        .await
        .unwrap();
    for plan in plans {
        println!("{plan}\n");
        assert!(
            plan.contains("Index Cond: (owner_id = (NULLIF(current_setting('app.current_user_id'::text, true), ''::text))::bigint)")
                || plan.contains("Index Cond: ((owner_id = (NULLIF(current_setting('app.current_user_id'::text, true), ''::text))::bigint)"),
            "the owner policy is not an index condition:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
}
