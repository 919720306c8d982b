//! Two users with contexts of the same name: through every RPC, neither can
//! read, list, recall, change, delete or write into the other's, and the
//! other's things look exactly like things that do not exist.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::{PairSettings, memory::MemoryAs, spawn_pair, spawn_pair_with};
use serde_json::json;
use tonic::Code;

fn ids(memories: &[pb::Memory]) -> Vec<i64> {
    memories.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn users_cannot_reach_each_others_contexts_or_memories_through_any_rpc() {
    let pair = spawn_pair().await;
    let alice = pair
        .memory_as(&pair.register_user("alice@example.test").await)
        .await;
    let bob = pair
        .memory_as(&pair.register_user("bob@example.test").await)
        .await;

    // Both have "shared"; only Alice has "secret".
    alice.create_context("shared", "alice's").await.unwrap();
    alice.create_context("secret", "alice only").await.unwrap();
    bob.create_context("shared", "bob's").await.unwrap();
    let a_shared = alice
        .remember("shared", "note", json!({"owner": "alice"}))
        .await
        .unwrap();
    let a_secret = alice
        .remember("secret", "note", json!({"owner": "alice", "pin": 1234}))
        .await
        .unwrap();
    alice.start_recording("secret").await.unwrap();
    let b_shared = bob
        .remember("shared", "note", json!({"owner": "bob"}))
        .await
        .unwrap();

    // Read: Bob's "shared" is his own; Alice's "secret" does not exist for him,
    // with the same answer as a name nobody has.
    assert_eq!(
        bob.get_context("shared").await.unwrap().description,
        "bob's"
    );
    assert_eq!(bob.get_context("shared").await.unwrap().memory_count, 1);
    let hidden = bob.get_context("secret").await.unwrap_err();
    let absent = bob.get_context("never-made").await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(
        hidden.message().replace("secret", "X"),
        absent.message().replace("never-made", "X")
    );

    // List.
    assert_eq!(bob.context_names().await.unwrap(), ["shared"]);
    assert_eq!(alice.context_names().await.unwrap(), ["secret", "shared"]);

    // Recall: named context, the recording context, every context, full text.
    assert_eq!(
        ids(&bob.recall_context("shared").await.unwrap()),
        [b_shared.id]
    );
    assert_eq!(
        bob.recall_context("secret").await.unwrap_err().code(),
        Code::NotFound
    );
    // Alice is recording; Bob is not, and her recording is not his.
    assert_eq!(
        bob.recall_context("").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let everything = bob
        .recall_all(pb::RecallRequest {
            all_contexts: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&everything), [b_shared.id]);
    let text = bob
        .recall_all(pb::RecallRequest {
            all_contexts: true,
            query: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(text.is_empty());

    // Write: into her context by name, or by her recording, is refused.
    assert_eq!(
        bob.remember("secret", "note", json!({"owner": "bob"}))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        bob.remember("", "note", json!({"owner": "bob"}))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    // Change and delete: her context and her memories are out of reach.
    assert_eq!(
        bob.start_recording("secret").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        bob.stop_recording("secret").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        bob.delete_context("secret").await.unwrap_err().code(),
        Code::NotFound
    );
    for id in [a_shared.id, a_secret.id] {
        assert_eq!(bob.forget(id).await.unwrap_err().code(), Code::NotFound);
    }
    // Deleting his own "shared" leaves hers alone.
    assert_eq!(bob.delete_context("shared").await.unwrap(), 1);
    // Recording his own context does not stop hers.
    bob.create_context("secret", "bob's own secret")
        .await
        .unwrap();
    bob.start_recording("secret").await.unwrap();
    bob.stop_recording("secret").await.unwrap();

    // Alice still has everything, untouched.
    assert_eq!(
        ids(&alice.recall_context("shared").await.unwrap()),
        [a_shared.id]
    );
    assert_eq!(
        ids(&alice.recall_context("secret").await.unwrap()),
        [a_secret.id]
    );
    let secret = alice.get_context("secret").await.unwrap();
    assert!(secret.recording);
    assert_eq!(secret.description, "alice only");
    assert_eq!(
        alice.remember("", "note", json!({})).await.unwrap().context,
        "secret"
    );
    assert_eq!(alice.get_context("shared").await.unwrap().memory_count, 1);
}

#[tokio::test]
async fn with_one_pooled_connection_alternating_users_never_see_each_other() {
    // One connection serves every request, so any setting that leaked from
    // one transaction to the next would show the previous user's rows.
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.database.db_pool_size = 1)).await;
    let users: Vec<MemoryAs> = vec![
        pair.memory_as(&pair.register_user("one@example.test").await)
            .await,
        pair.memory_as(&pair.register_user("two@example.test").await)
            .await,
    ];
    for user in &users {
        user.create_context("same", "").await.unwrap();
    }
    let mut own: Vec<Vec<i64>> = vec![Vec::new(), Vec::new()];
    for round in 0..10 {
        for (who, user) in users.iter().enumerate() {
            let stored = user
                .remember("same", "note", json!({"who": who, "round": round}))
                .await
                .unwrap();
            own[who].insert(0, stored.id);
            assert_eq!(ids(&user.recall_context("same").await.unwrap()), own[who]);
            let all = user
                .recall_all(pb::RecallRequest {
                    all_contexts: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(ids(&all), own[who]);
            assert_eq!(user.context_names().await.unwrap(), ["same"]);
        }
    }
    // The same, with both users' requests in flight at once.
    let mut tasks = Vec::new();
    for (who, user) in users.iter().enumerate() {
        let user = user.clone();
        let expected = own[who].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                assert_eq!(ids(&user.recall_context("same").await.unwrap()), expected);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
