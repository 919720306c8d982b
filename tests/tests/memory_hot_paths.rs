//! Remember in one statement and Recall with its context found inside the
//! plan (see memory-service `db::remember` and `db::memories::plan`): the
//! usual case is stored and counted exactly (per owner and per context),
//! every other case answers as the step-by-step path always did, a Remember
//! that waited for another transaction of its user sees what that
//! transaction changed, and Recall's page statement is planned once per
//! connection.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::{
    OptionalExtension, QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use memory_service::{
    db::{self as memory_db, Deployment, page},
    recall::RecallQuery,
    scope::RequestScope,
};
use ninaivalaigal::{
    db::{DatabaseTls, build_pool},
    memory_v1 as pb,
    server::Deadline,
    token::AuthenticatedUser,
};
use ninaivalaigal_tests::{
    PairSettings, TestPair, bearer,
    cluster::Role,
    db::set_rls_user,
    eventually,
    memory::{remember, remember_request},
    spawn_pair, spawn_pair_with,
};
use serde_json::json;
use tonic::Code;

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    memories: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// The user's usage row, and the counts of the memories themselves.
async fn usage_and_truth(pair: &TestPair, user_id: i64) -> (Counts, Counts) {
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user_id).await?;
        // No row until a first memory is stored (or a write rolled back).
        let usage = diesel::sql_query("SELECT memories, bytes FROM memory_usage")
            .get_result(conn)
            .await
            .optional()?
            .unwrap_or(Counts {
                memories: 0,
                bytes: 0,
            });
        let truth: Counts = diesel::sql_query(
            "SELECT count(*) AS memories, coalesce(sum(data_bytes), 0)::bigint AS bytes FROM memories",
        )
        .get_result(conn)
        .await?;
        Ok((usage, truth))
    })
    .await
    .unwrap()
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct ContextCount {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    memories: i64,
}

/// Each context's `memory_count`, and the count of its memories.
async fn context_counts_and_truth(
    pair: &TestPair,
    user_id: i64,
) -> (Vec<ContextCount>, Vec<ContextCount>) {
    let mut conn = pair.db.connect(Role::Memory).await;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user_id).await?;
        let kept = diesel::sql_query(
            "SELECT name, memory_count AS memories FROM recording_contexts ORDER BY name",
        )
        .load(conn)
        .await?;
        let truth = diesel::sql_query(
            "SELECT c.name, count(m.id) AS memories FROM recording_contexts c \
               LEFT JOIN memories m ON m.owner_id = c.owner_id AND m.context_id = c.id \
              GROUP BY c.name ORDER BY c.name",
        )
        .load(conn)
        .await?;
        Ok((kept, truth))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn usage_and_context_counts_stay_exact_through_many_concurrent_remembers_and_retries() {
    let pair = spawn_pair().await;
    let user = pair.register_user("counter@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("a", "").await.unwrap();
    memory.create_context("b", "").await.unwrap();
    memory.start_recording("b").await.unwrap();
    // Named and recording targets, plain and with request ids, each request
    // id sent three times at once.
    let requests: Vec<pb::RememberRequest> = (0..30)
        .flat_map(|i| {
            let context = if i % 2 == 0 { "a" } else { "" };
            let data = json!({"i": i, "pad": "y".repeat(i * 7)});
            if i % 3 == 0 {
                let id = uuid::Uuid::new_v4().to_string();
                vec![remember_request(context, data, &id); 3]
            } else {
                vec![remember_request(context, data, "")]
            }
        })
        .collect();
    let sent = requests.len();
    let client = pair.memory_client().await;
    let calls: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let mut client = client.clone();
            let request = bearer(request, &user.access_token);
            tokio::spawn(async move { client.remember(request).await })
        })
        .collect();
    let mut stored = 0;
    for call in calls {
        if !call.await.unwrap().unwrap().into_inner().already_stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 30, "each memory once, of {sent} calls");
    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
    assert_eq!(usage.memories, 30);
    let (kept, truth) = context_counts_and_truth(&pair, user.id).await;
    assert_eq!(kept, truth);
    assert_eq!(
        kept.iter().map(|c| c.memories).collect::<Vec<_>>(),
        vec![15, 15]
    );
    // As the API answers them.
    let listed = memory.list_contexts(0, "").await.unwrap().contexts;
    assert_eq!(
        listed.iter().map(|c| c.memory_count).collect::<Vec<_>>(),
        vec![15, 15]
    );
    assert_eq!(memory.recall_context("a").await.unwrap().len(), 15);
    assert_eq!(memory.recall_context("b").await.unwrap().len(), 15);

    // Forgetting and deleting keep them exact too.
    let first = memory.recall_context("a").await.unwrap()[0].id;
    memory.forget(first).await.unwrap();
    assert_eq!(memory.delete_context("b").await.unwrap(), 15);
    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
    assert_eq!(usage.memories, 14);
    let (kept, truth) = context_counts_and_truth(&pair, user.id).await;
    assert_eq!(kept, truth);
    assert_eq!(
        kept,
        vec![ContextCount {
            name: "a".into(),
            memories: 14
        }]
    );
}

#[tokio::test]
async fn the_quota_admits_up_to_its_exact_edge_and_a_retry_past_it_still_replays() {
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.max_memories_per_user = 3;
        s.max_memory_bytes_per_user = 100;
    }))
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("edge@example.test").await;
    pair.memory_as(&user)
        .await
        .create_context("a", "")
        .await
        .unwrap();
    // {"p":"…"} is 8 bytes besides its padding: two of 50 make exactly 100.
    let fifty = |request_id: &str| remember_request("a", json!({"p": "x".repeat(42)}), request_id);
    const REQUEST_ID: &str = "0b6f5d2e-1c55-4a51-9a4f-6f0f3e1d2c3b";
    remember(&pair, &user, fifty(REQUEST_ID)).await.unwrap();
    remember(&pair, &user, fifty("")).await.unwrap();
    let (usage, _) = usage_and_truth(&pair, user.id).await;
    assert_eq!(
        usage,
        Counts {
            memories: 2,
            bytes: 100
        }
    );
    // Not one byte more.
    let refused = remember(&pair, &user, remember_request("a", json!({}), ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("your memories hold 100 bytes of JSON; this one (2 bytes) would pass"),
        "{}",
        refused.message()
    );
    // A retry of a stored memory is answered as stored, even at the edge.
    let replay = remember(&pair, &user, fifty(REQUEST_ID)).await.unwrap();
    assert!(replay.already_stored);
    // The count limit, at its edge.
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.max_memories_per_user = 2)).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("count@example.test").await;
    pair.memory_as(&user)
        .await
        .create_context("a", "")
        .await
        .unwrap();
    for i in 0..2 {
        remember(&pair, &user, remember_request("a", json!({"i": i}), ""))
            .await
            .unwrap();
    }
    let refused = remember(&pair, &user, remember_request("a", json!({}), ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("you have 2 memories, the most one user may keep"),
        "{}",
        refused.message()
    );
    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
}

#[tokio::test]
async fn a_missing_or_unrecorded_context_is_answered_as_before() {
    let pair = spawn_pair().await;
    let user = pair.register_user("lost@example.test").await;
    let memory = pair.memory_as(&user).await;
    let missing = remember(&pair, &user, remember_request("nope", json!({}), ""))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        missing.message(),
        "context \"nope\" not found; `eM contexts` lists yours"
    );
    let unrecorded = remember(&pair, &user, remember_request("", json!({}), ""))
        .await
        .unwrap_err();
    assert_eq!(unrecorded.code(), Code::FailedPrecondition);
    assert_eq!(
        unrecorded.message(),
        "no context is recording; run `eM start --context NAME` or name a context"
    );
    // Recall says the same, with or without a page token.
    for page_token in [String::new(), "x".repeat(3)] {
        let request = pb::RecallRequest {
            context: "nope".into(),
            page_token: page_token.clone(),
            ..Default::default()
        };
        let status = memory.recall(request).await.unwrap_err();
        if page_token.is_empty() {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert_eq!(status.message(), missing.message());
        } else {
            // A token that does not parse is refused before any look-up.
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        }
    }
    let status = memory
        .recall(pb::RecallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), unrecorded.message());
    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
    assert_eq!(usage.memories, 0);

    // Once it records, the unnamed write goes there.
    memory.create_context("a", "").await.unwrap();
    memory.start_recording("a").await.unwrap();
    let stored = remember(&pair, &user, remember_request("", json!({"k": 1}), ""))
        .await
        .unwrap();
    assert_eq!(stored.memory.unwrap().context, "a");
}

#[tokio::test]
async fn a_page_token_of_another_context_is_refused_whether_or_not_the_page_is_empty() {
    let pair = spawn_pair().await;
    let user = pair.register_user("pager@example.test").await;
    let memory = pair.memory_as(&user).await;
    for name in ["a", "b", "empty"] {
        memory.create_context(name, "").await.unwrap();
    }
    for i in 0..3 {
        memory.remember("a", "note", json!({"i": i})).await.unwrap();
        memory.remember("b", "note", json!({"i": i})).await.unwrap();
    }
    let first = memory
        .recall(pb::RecallRequest {
            context: "a".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());
    for other in ["b", "empty"] {
        let status = memory
            .recall(pb::RecallRequest {
                context: other.into(),
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{other}: {status:?}");
        assert!(status.message().contains("different query"), "{status:?}");
    }
    // A missing context is NOT_FOUND before the token is judged.
    let status = memory
        .recall(pb::RecallRequest {
            context: "gone".into(),
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // The token goes on where it belongs, in order.
    let all: Vec<i64> = memory
        .recall_all(pb::RecallRequest {
            context: "a".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "{all:?}");
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// Waits until another session waits for `blocker` (a backend's pid).
async fn until_one_waits_for(pair: &TestPair, blocker: i64) {
    let mut watcher = pair.db.connect(Role::Owner).await;
    eventually(
        "a Remember waits for the usage row",
        Duration::from_secs(10),
        async || {
            let waiting: Number = diesel::sql_query(format!(
                "SELECT count(*) AS number FROM pg_stat_activity
                  WHERE {blocker} = ANY(pg_blocking_pids(pid))"
            ))
            .get_result(&mut watcher)
            .await
            .unwrap();
            waiting.number > 0
        },
    )
    .await;
}

/// Opens a transaction as `user_id` that holds the usage row, as every
/// writer of memories does first, and runs `change` in it.
/// Returns the connection and its backend's pid.
async fn holding_the_usage_row(
    pair: &TestPair,
    user_id: i64,
    change: &str,
) -> (AsyncPgConnection, i64) {
    let mut conn = pair.db.connect(Role::Memory).await;
    let pid: Number = diesel::sql_query("SELECT pg_backend_pid()::bigint AS number")
        .get_result(&mut conn)
        .await
        .unwrap();
    conn.batch_execute("BEGIN").await.unwrap();
    set_rls_user(&mut conn, user_id).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO memory_usage (owner_id) VALUES ({user_id})
         ON CONFLICT (owner_id) DO UPDATE SET owner_id = EXCLUDED.owner_id; {change}"
    ))
    .await
    .unwrap();
    (conn, pid.number)
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[tokio::test]
async fn a_remember_that_waited_sees_what_the_transaction_before_it_changed() {
    let pair = spawn_pair().await;
    let user = pair.register_user("waiter@example.test").await;
    let memory = pair.memory_as(&user).await;
    for name in ["a", "b", "doomed"] {
        memory.create_context(name, "").await.unwrap();
    }
    memory.start_recording("a").await.unwrap();

    // Recording moves from a to b while the Remember waits: it goes to b.
    let (mut blocker, blocker_pid) = holding_the_usage_row(
        &pair,
        user.id,
        "UPDATE recording_contexts SET is_active = false WHERE name = 'a';
         UPDATE recording_contexts SET is_active = true WHERE name = 'b'",
    )
    .await;
    let waiting = {
        let (pair_client, token) = (pair.memory_client().await, user.access_token.clone());
        tokio::spawn(async move {
            let mut client = pair_client;
            client
                .remember(bearer(
                    remember_request("", json!({"k": "moved"}), ""),
                    &token,
                ))
                .await
        })
    };
    until_one_waits_for(&pair, blocker_pid).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let stored = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(stored.memory.unwrap().context, "b");

    // The context is deleted while the Remember waits: NOT_FOUND, as when
    // it was looked up after the wait.
    let (mut blocker, blocker_pid) = holding_the_usage_row(
        &pair,
        user.id,
        "DELETE FROM recording_contexts WHERE name = 'doomed'",
    )
    .await;
    let waiting = {
        let (pair_client, token) = (pair.memory_client().await, user.access_token.clone());
        tokio::spawn(async move {
            let mut client = pair_client;
            client
                .remember(bearer(remember_request("doomed", json!({}), ""), &token))
                .await
        })
    };
    until_one_waits_for(&pair, blocker_pid).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let status = waiting.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
    assert_eq!(usage.memories, 1);
    let mut conn = pair.db.connect(Role::Memory).await;
    let user_id = user.id;
    let names: Vec<Name> = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, user_id).await?;
            diesel::sql_query(
                "SELECT c.name FROM memories m JOIN recording_contexts c ON c.id = m.context_id",
            )
            .load(conn)
            .await
        })
        .await
        .unwrap();
    assert_eq!(
        names.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
}

#[tokio::test]
async fn statements_a_connection_has_not_prepared_yet_still_run_inside_their_transaction() {
    // One pooled connection, new: Remember's and Recall's statements are
    // prepared on it by these very calls, a round trip before they run,
    // while the COMMIT sent with each waits its turn behind them. Had a
    // COMMIT gone first, the statement would have run with no user set:
    // row-level security would have refused the insert and hidden the page.
    let pair =
        spawn_pair_with(PairSettings::default().memory(|s| s.database.db_pool_size = 1)).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("first-statements@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("fresh", "").await.unwrap();
    let stored = memory
        .remember("fresh", "note", json!({"first": true}))
        .await
        .unwrap();
    let page = memory
        .recall(pb::RecallRequest {
            context: "fresh".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![stored.id]
    );
    let (usage, truth) = usage_and_truth(&pair, user.id).await;
    assert_eq!(usage, truth);
    assert_eq!(truth.memories, 1);
}

#[derive(QueryableByName, Debug)]
struct Plans {
    #[diesel(sql_type = BigInt)]
    custom: i64,
    #[diesel(sql_type = BigInt)]
    generic: i64,
}

#[tokio::test]
async fn a_recall_page_is_planned_once_per_connection_not_once_per_call() {
    // PostgreSQL plans a prepared statement for its values on every call
    // while such a plan looks cheaper than the generic one, and the page
    // size as `LIMIT $n` made it look so forever (db::PLAN_ONCE).
    let pair = spawn_pair().await;
    pair.wait_until_serving().await;
    let user = pair.register_user("planned-once@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("work", "").await.unwrap();
    for n in 0..3 {
        memory
            .remember("work", "note", json!({"n": n}))
            .await
            .unwrap();
    }

    let url = pair.db.database_url(Role::Memory);
    let tls = DatabaseTls::new(&url, None).unwrap();
    // One connection: every call below runs on it, and so does the check.
    let pool = build_pool(&url, tls, 1, Duration::from_secs(5));
    let scope = RequestScope {
        user: AuthenticatedUser {
            user_id: user.id,
            session_id: uuid::Uuid::new_v4(),
            email: user.email.clone(),
            role: "user".into(),
            expires_at: i64::MAX,
        },
        deadline: Deadline(tokio::time::Instant::now() + Duration::from_secs(30)),
    };
    let query = RecallQuery::try_from(pb::RecallRequest {
        context: "work".into(),
        ..Default::default()
    })
    .unwrap();
    let cut = page::PageCut {
        size: 20,
        bytes: 1 << 20,
        overhead: 256,
    };
    // More calls than PostgreSQL's five custom plans before it compares.
    for _ in 0..8 {
        let query = query.clone();
        let page =
            memory_db::with_user_statement(&pool, Deployment::SingleServer, &scope, move |conn| {
                Box::pin(async move { page::plan_and_load(conn, &query, None, cut).await })
            })
            .await
            .unwrap();
        assert_eq!(page.rows.len(), 3);
    }

    let mut conn = pool.get().await.unwrap();
    let plans: Plans = diesel::sql_query(
        "SELECT COALESCE(sum(custom_plans), 0)::bigint AS custom, \
                COALESCE(sum(generic_plans), 0)::bigint AS generic \
           FROM pg_prepared_statements WHERE statement LIKE '%selected_context%'",
    )
    .get_result(&mut *conn)
    .await
    .unwrap();
    assert_eq!(plans.custom, 0, "{plans:?}");
    assert!(plans.generic >= 8, "{plans:?}");
}
