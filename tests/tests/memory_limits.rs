//! What one user can make the memory-service hold: a Recall response is
//! bounded in bytes (and pages on without losing a memory), and the
//! memories and bytes one user keeps are bounded by quotas that hold under
//! concurrency, are freed by forgetting (or by the account's deletion), and
//! are private to their owner.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection, RunQueryDsl};
use ninaivalaigal::{auth_v1::DeleteUserRequest, memory_v1 as pb};
use ninaivalaigal_tests::{
    PairSettings, bearer, cluster::Role, db::set_rls_user, spawn_pair, spawn_pair_with,
};
use serde_json::json;
use tonic::Code;

/// A memory of about `bytes` bytes of JSON, tagged with `i`.
fn sized(i: usize, bytes: usize) -> serde_json::Value {
    json!({"i": i, "pad": "x".repeat(bytes)})
}

#[tokio::test]
async fn a_recall_page_stops_at_its_byte_budget_and_paging_on_loses_nothing() {
    // 12 memories of ~4 KB under a 10 KB budget: a full page of 50 would
    // be ~48 KB.
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.max_response_bytes = 10_000)).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("pager@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("big", "").await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..12 {
        ids.insert(
            memory
                .remember("big", "note", sized(i, 4000))
                .await
                .unwrap()
                .id,
        );
    }

    let request = pb::RecallRequest {
        context: "big".into(),
        ..Default::default()
    };
    let first = memory.recall(request.clone()).await.unwrap();
    // Each memory counts as its ~4,016 bytes of JSON plus 256 of overhead
    // (4,272): two fit in 10,000 bytes, a third would make 12,816.
    assert_eq!(
        first.memories.len(),
        2,
        "the page is cut by bytes, not rows: {} memories",
        first.memories.len()
    );
    assert!(
        !first.next_page_token.is_empty(),
        "a cut page says where to go on"
    );

    let all = memory.recall_all(request).await.unwrap();
    let seen: Vec<i64> = all.iter().map(|m| m.id).collect();
    assert_eq!(seen.len(), 12, "every memory exactly once: {seen:?}");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), ids);
    // Still newest first across the pages.
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    // A memory larger than the whole budget still comes back, alone.
    memory
        .remember("big", "note", sized(99, 20_000))
        .await
        .unwrap();
    let page = memory
        .recall(pb::RecallRequest {
            context: "big".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.memories.len(), 1);
    assert!(!page.next_page_token.is_empty());
}

#[tokio::test]
async fn remember_past_the_memory_quota_is_refused_until_one_is_forgotten() {
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.max_memories_per_user = 3)).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("hoarder@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("a", "").await.unwrap();
    memory.create_context("b", "").await.unwrap();
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(memory.remember("a", "note", json!({"i": i})).await.unwrap());
    }
    let refused = memory
        .remember("b", "note", json!({"i": 3}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("NINAIVALAIGAL_MAX_MEMORIES_PER_USER = 3"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("forget"),
        "{}",
        refused.message()
    );
    assert_eq!(memory.recall_context("b").await.unwrap().len(), 0);

    // Forgetting one frees one place.
    memory.forget(kept[0].id).await.unwrap();
    memory.remember("b", "note", json!({"i": 4})).await.unwrap();
    assert_eq!(
        memory
            .remember("b", "note", json!({"i": 5}))
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    // Deleting a context frees its memories' places.
    assert_eq!(memory.delete_context("a").await.unwrap(), 2);
    memory.remember("b", "note", json!({"i": 6})).await.unwrap();
    memory.remember("b", "note", json!({"i": 7})).await.unwrap();
    assert_eq!(memory.recall_context("b").await.unwrap().len(), 3);

    // Another user has a quota of their own.
    let other = pair.register_user("other@example.test").await;
    let other = pair.memory_as(&other).await;
    other.create_context("a", "").await.unwrap();
    other.remember("a", "note", json!({})).await.unwrap();
}

#[tokio::test]
async fn remember_past_the_byte_quota_is_refused_naming_it() {
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.max_memory_bytes_per_user = 10_000))
            .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("bulky@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("a", "").await.unwrap();
    let first = memory.remember("a", "note", sized(0, 6000)).await.unwrap();
    let refused = memory
        .remember("a", "note", sized(1, 6000))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("NINAIVALAIGAL_MAX_MEMORY_BYTES_PER_USER = 10000"),
        "{}",
        refused.message()
    );
    // Small ones still fit beside it; forgetting frees the bytes.
    memory.remember("a", "note", sized(2, 100)).await.unwrap();
    memory.forget(first.id).await.unwrap();
    memory.remember("a", "note", sized(3, 6000)).await.unwrap();
}

#[tokio::test]
async fn concurrent_remembers_at_the_edge_of_the_quota_do_not_overshoot() {
    const LIMIT: u64 = 5;
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.max_memories_per_user = LIMIT)).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("racer@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("a", "").await.unwrap();
    for i in 0..LIMIT - 1 {
        memory.remember("a", "note", json!({"i": i})).await.unwrap();
    }
    // One place left, eight writers at once.
    let attempts = (0..8).map(|i| {
        let memory = memory.clone();
        tokio::spawn(async move { memory.remember("a", "note", json!({"racer": i})).await })
    });
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    assert_eq!(succeeded, 1, "exactly one writer gets the last place");
    assert_eq!(
        memory.recall_context("a").await.unwrap().len(),
        LIMIT as usize
    );
}

#[derive(QueryableByName)]
struct Usage {
    #[diesel(sql_type = BigInt)]
    owner_id: i64,
    #[diesel(sql_type = BigInt)]
    memories: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[tokio::test]
async fn usage_rows_are_private_to_their_owner_in_the_database() {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    for user in [&alice, &bob] {
        let memory = pair.memory_as(user).await;
        memory.create_context("c", "").await.unwrap();
        memory
            .remember("c", "note", json!({"k": "v"}))
            .await
            .unwrap();
    }

    let mut conn = pair.db.connect(Role::Memory).await;
    let alice_id = alice.id;
    let bob_id = bob.id;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, bob_id).await?;
        let rows: Vec<Usage> =
            diesel::sql_query("SELECT owner_id, memories, bytes FROM memory_usage")
                .load(conn)
                .await?;
        assert_eq!(rows.len(), 1, "Bob sees his own row only");
        assert_eq!(rows[0].owner_id, bob_id);
        assert_eq!(rows[0].memories, 1);
        assert_eq!(rows[0].bytes, r#"{"k":"v"}"#.len() as i64);
        // Nor can he change Alice's.
        let changed = diesel::sql_query(format!(
            "UPDATE memory_usage SET memories = 0 WHERE owner_id = {alice_id}"
        ))
        .execute(conn)
        .await?;
        assert_eq!(changed, 0);
        Ok(())
    })
    .await
    .unwrap();

    // Without a user, nothing; and the role may not delete usage at all.
    let rows: Vec<Usage> = diesel::sql_query("SELECT owner_id, memories, bytes FROM memory_usage")
        .load(&mut conn)
        .await
        .unwrap();
    assert!(rows.is_empty());
    let refused = diesel::sql_query("DELETE FROM memory_usage")
        .execute(&mut conn)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("permission denied"), "{refused}");
}

#[tokio::test]
async fn deleting_an_account_with_memories_takes_its_usage_with_it() {
    let pair = spawn_pair().await;
    let admin = pair.register_admin().await;
    let user = pair.register_user("leaving@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("c", "").await.unwrap();
    memory
        .remember("c", "note", json!({"k": "v"}))
        .await
        .unwrap();

    // The auth role's delete cascades to the memories; their usage trigger
    // must not stand in its way.
    pair.admin_client()
        .await
        .delete_user(bearer(
            DeleteUserRequest {
                email: user.email.clone(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap();
    let mut conn = pair.db.connect(Role::Memory).await;
    let user_id = user.id;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user_id).await?;
        let rows: Vec<Usage> =
            diesel::sql_query("SELECT owner_id, memories, bytes FROM memory_usage")
                .load(conn)
                .await?;
        assert!(rows.is_empty());
        Ok(())
    })
    .await
    .unwrap();
}
