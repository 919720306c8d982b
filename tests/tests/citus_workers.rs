//! Isolation on a Citus cluster, checked where the data is: on each worker,
//! as the memory-service's role connecting to the worker directly, and for
//! two users whose data lands on different workers.
//!
//! These tests need a cluster (`deploy/citus/test.sh`, where the harness's
//! `db.env` names the workers), so the default run ignores them; run
//! without one, they fail.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Integer, Text},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::{
    TestPair,
    cluster::{Cluster, Role},
    db::{connect_on, set_rls_user},
    spawn_pair,
};
use serde_json::json;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Port {
    #[diesel(sql_type = Integer)]
    port: i32,
}

#[derive(QueryableByName)]
struct Shard {
    #[diesel(sql_type = Text)]
    name: String,
}

fn workers() -> Vec<u16> {
    let ports = Cluster::get().worker_ports.clone();
    assert!(
        !ports.is_empty(),
        "no Citus workers in the harness's db.env: run these tests with deploy/citus/test.sh"
    );
    ports
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The port of the worker that holds `owner_id`'s memories.
async fn worker_of(pair: &TestPair, owner_id: i64) -> u16 {
    let mut conn = pair.db.connect(Role::Owner).await;
    let row: Port = diesel::sql_query(
        "SELECT nodeport AS port FROM citus_shards \
          WHERE shardid = get_shard_id_for_distribution_column('memories', $1)",
    )
    .bind::<BigInt, _>(owner_id)
    .get_result(&mut conn)
    .await
    .unwrap();
    u16::try_from(row.port).unwrap()
}

/// The shards of `table` that the worker at `port` holds.
async fn shards_on(pair: &TestPair, table: &str, port: u16) -> Vec<String> {
    let mut conn = pair.db.connect(Role::Owner).await;
    let shards: Vec<Shard> = diesel::sql_query(
        "SELECT shard_name::text AS name FROM citus_shards \
          WHERE table_name = $1::regclass AND nodeport = $2",
    )
    .bind::<Text, _>(table)
    .bind::<Integer, _>(i32::from(port))
    .load(&mut conn)
    .await
    .unwrap();
    shards.into_iter().map(|s| s.name).collect()
}

/// Registers users until two of them have their data on different workers.
async fn users_on_two_workers(pair: &TestPair) -> [(ninaivalaigal_tests::TestUser, u16); 2] {
    let first = pair.register_user("first@example.test").await;
    let first_worker = worker_of(pair, first.id).await;
    for n in 0..64 {
        let other = pair.register_user(&format!("other{n}@example.test")).await;
        let other_worker = worker_of(pair, other.id).await;
        if other_worker != first_worker {
            return [(first, first_worker), (other, other_worker)];
        }
    }
    panic!("64 users, and all of their data on one worker: is the table distributed?");
}

#[tokio::test]
#[ignore = "needs a Citus cluster: deploy/citus/test.sh"]
async fn users_on_different_workers_never_see_each_others_data() {
    workers();
    let pair = spawn_pair().await;
    let [(alice, alice_worker), (bob, bob_worker)] = users_on_two_workers(&pair).await;
    assert_ne!(alice_worker, bob_worker);
    let alice_api = pair.memory_as(&alice).await;
    let bob_api = pair.memory_as(&bob).await;
    for (api, who) in [(&alice_api, "alice"), (&bob_api, "bob")] {
        api.create_context("work", who).await.unwrap();
        api.start_recording("work").await.unwrap();
        api.remember(
            "work",
            "note",
            json!({"owner": who, "text": "shared words"}),
        )
        .await
        .unwrap();
    }
    for (api, who) in [(&alice_api, "alice"), (&bob_api, "bob")] {
        let found = api
            .recall_all(pb::RecallRequest {
                all_contexts: true,
                query: "shared words".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{who} sees only their own memory");
        assert_eq!(api.get_context("work").await.unwrap().description, who);
        assert_eq!(api.context_names().await.unwrap(), ["work"]);
    }

    // Each worker holds one of them, and its shards answer the memory role
    // with that user's rows only when that user is set.
    for ((user, port), other) in [((&alice, alice_worker), &bob), ((&bob, bob_worker), &alice)] {
        let mut conn = connect_on(port, Role::Memory, pair.db.name()).await;
        let shards = shards_on(&pair, "memories", port).await;
        let union = shards
            .iter()
            .map(|shard| format!("SELECT owner_id FROM {shard}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let (user_id, other_id) = (user.id, other.id);
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, user_id).await?;
            let sql =
                format!("SELECT count(*) AS n FROM ({union}) AS rows WHERE owner_id = {user_id}");
            assert_eq!(count(conn, &sql).await, 1);
            let sql =
                format!("SELECT count(*) AS n FROM ({union}) AS rows WHERE owner_id <> {user_id}");
            assert_eq!(count(conn, &sql).await, 0);
            set_rls_user(conn, other_id).await?;
            let sql = format!("SELECT count(*) AS n FROM ({union}) AS rows");
            assert_eq!(
                count(conn, &sql).await,
                0,
                "the other user's rows are on the other worker"
            );
            Ok(())
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
#[ignore = "needs a Citus cluster: deploy/citus/test.sh"]
async fn row_level_security_holds_on_every_worker_for_the_service_role() {
    workers();
    let pair = spawn_pair().await;
    let [(alice, alice_worker), (bob, _)] = users_on_two_workers(&pair).await;
    for (user, who) in [(&alice, "alice"), (&bob, "bob")] {
        let api = pair.memory_as(user).await;
        api.create_context("work", who).await.unwrap();
        api.remember("work", "note", json!({"owner": who}))
            .await
            .unwrap();
    }

    for port in workers() {
        let mut conn = connect_on(port, Role::Memory, pair.db.name()).await;
        for table in [
            "memories",
            "memory_terms",
            "recording_contexts",
            "memory_usage",
        ] {
            for shard in shards_on(&pair, table, port).await {
                // No user set, or an empty one: nothing, shard by shard.
                let sql = format!("SELECT count(*) AS n FROM {shard}");
                assert_eq!(count(&mut conn, &sql).await, 0, "{shard} on {port}");
                conn.batch_execute("BEGIN; SET LOCAL app.current_user_id = ''")
                    .await
                    .unwrap();
                assert_eq!(count(&mut conn, &sql).await, 0, "{shard} on {port}");
                conn.batch_execute("ROLLBACK").await.unwrap();
            }
        }
        // The distributed tables, queried from the worker: the same.
        assert_eq!(
            count(&mut conn, "SELECT count(*) AS n FROM memories").await,
            0
        );
    }

    // As Alice, on her worker: her shard refuses a row of Bob's, and an
    // update cannot hand her row to him.
    let shard = {
        let mut conn = pair.db.connect(Role::Owner).await;
        let row: Shard = diesel::sql_query(
            "SELECT shard_name::text AS name FROM citus_shards \
              WHERE shardid = get_shard_id_for_distribution_column('recording_contexts', $1)",
        )
        .bind::<BigInt, _>(alice.id)
        .get_result(&mut conn)
        .await
        .unwrap();
        row.name
    };
    let mut conn = connect_on(alice_worker, Role::Memory, pair.db.name()).await;
    let (alice_id, bob_id) = (alice.id, bob.id);
    let insert = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, alice_id).await?;
            conn.batch_execute(&format!(
                "INSERT INTO {shard} (owner_id, name) VALUES ({bob_id}, 'planted')"
            ))
            .await
        })
        .await
        .unwrap_err();
    assert!(
        insert.to_string().contains("row-level security"),
        "{insert}"
    );
    let update = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, alice_id).await?;
            conn.batch_execute(&format!("UPDATE {shard} SET owner_id = {bob_id}"))
                .await
        })
        .await
        .unwrap_err();
    assert!(
        update.to_string().contains("row-level security"),
        "{update}"
    );
}
