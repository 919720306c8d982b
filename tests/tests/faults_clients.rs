//! Clients that misbehave cannot make the memory-service hold what they
//! leave behind: a request abandoned mid-transaction (the client hangs up,
//! or its deadline passes, while the request waits on a row lock) leaves no
//! open transaction and no held pooled connection, and nothing it wrote is
//! committed; a client that never reads its responses cannot make the
//! server buffer without bound (figures printed with `--nocapture`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Integer, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer, cluster::Role, eventually,
    faults::client_deadline_as_deadline_exceeded, raw_h2, spawn_pair_with,
};
use prost::Message;
use serde_json::json;
use tokio::time::Instant;
use tonic::Code;

const CONTEXT: &str = "locked";

async fn pair_with_small_pool() -> (TestPair, TestUser) {
    // Two connections: one leaked connection would show at once.
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.database.db_pool_size = 2;
        s.database.db_timeout_seconds = 2;
    }))
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("misbehaving@example.com").await;
    pair.memory_as(&user)
        .await
        .create_context(CONTEXT, "")
        .await
        .unwrap();
    (pair, user)
}

/// The memory-service's pooled backends on the test's database, by state
/// (`idle`, `active`, `idle in transaction`) and wait event; `observer` and
/// `locker` are the test's own connections of the same role (a role sees
/// the state of its own backends only), left out.
async fn pool_backends(
    observer: &mut AsyncPgConnection,
    database: &str,
    locker: i32,
) -> Vec<(String, String)> {
    #[derive(QueryableByName)]
    struct Backend {
        #[diesel(sql_type = Text)]
        state: String,
        #[diesel(sql_type = Text)]
        wait: String,
    }
    let rows: Vec<Backend> = diesel::sql_query(
        "SELECT coalesce(state, '') AS state, coalesce(wait_event_type || ':' || wait_event, '') AS wait
           FROM pg_stat_activity
          WHERE usename = 'ninaivalaigal_memory' AND datname = $1
            AND pid <> pg_backend_pid() AND pid <> $2",
    )
    .bind::<Text, _>(database)
    .bind::<Integer, _>(locker)
    .load(observer)
    .await
    .unwrap();
    rows.into_iter().map(|b| (b.state, b.wait)).collect()
}

async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    let row: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result(conn)
        .await
        .unwrap();
    row.pid
}

/// Memories whose data has this marker, read as `user` through the memory
/// role (the owner role sees no rows: row-level security is forced).
async fn count_marker(conn: &mut AsyncPgConnection, user: &TestUser, marker: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    conn.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query("SELECT set_config('app.current_user_id', $1, true)")
        .bind::<Text, _>(user.id.to_string())
        .execute(conn)
        .await
        .unwrap();
    let row: Count =
        diesel::sql_query("SELECT count(*) AS count FROM memories WHERE data->>'marker' = $1")
            .bind::<Text, _>(marker)
            .get_result(conn)
            .await
            .unwrap();
    conn.batch_execute("COMMIT").await.unwrap();
    row.count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_abandoned_on_a_row_lock_leave_no_transaction_and_no_held_connection() {
    let (pair, user) = pair_with_small_pool().await;
    let mut observer = pair.db.connect(Role::Memory).await;
    let database = pair.db.name().to_owned();

    // The test holds the context row FOR UPDATE: a Remember into it blocks
    // on the foreign-key check of its insert. (As the memory role, with the
    // user set: the owner role sees no rows, row-level security is forced
    // on it too.)
    let mut locker = pair.db.connect(Role::Memory).await;
    let locker_pid = backend_pid(&mut locker).await;
    locker.batch_execute("BEGIN").await.unwrap();
    diesel::sql_query("SELECT set_config('app.current_user_id', $1, true)")
        .bind::<Text, _>(user.id.to_string())
        .execute(&mut locker)
        .await
        .unwrap();
    locker
        .batch_execute(&format!(
            "SELECT id FROM recording_contexts WHERE name = '{CONTEXT}' FOR UPDATE"
        ))
        .await
        .unwrap();

    // One client gives up after 500 ms (its deadline); another hangs up
    // (drops the call and its connection) after 500 ms.
    let memory = pair.memory_as(&user).await;
    let remember = |marker: &'static str| {
        bearer(
            pb::RememberRequest {
                context: CONTEXT.into(),
                r#type: "note".into(),
                data: Some(ninaivalaigal_tests::memory::to_struct(
                    json!({ "marker": marker }),
                )),
                request_id: String::new(),
            },
            &user.access_token,
        )
    };
    let mut with_deadline = remember("deadline");
    with_deadline.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let mut client = pair.memory_client().await;
    let status =
        client_deadline_as_deadline_exceeded(client.remember(with_deadline).await.unwrap_err());
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let deadline_answer = started.elapsed();

    let hang_up = tokio::spawn({
        let mut client = ninaivalaigal::memory_v1::memory_service_client::MemoryServiceClient::new(
            pair.memory_channel().await,
        );
        let request = remember("hung-up");
        async move { client.remember(request).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    hang_up.abort();
    let _ = hang_up.await;

    // While the lock is held, the abandoned statements still wait on it
    // in PostgreSQL (a backend cannot learn that its client left while it
    // waits on a lock); none is idle in a transaction.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = pool_backends(&mut observer, &database, locker_pid).await;
    assert!(
        during
            .iter()
            .all(|(state, _)| state != "idle in transaction"),
        "{during:?}"
    );

    // Release the lock: the abandoned transactions end without committing,
    // and the pool's connections are all idle again.
    locker.batch_execute("ROLLBACK").await.unwrap();
    let settled = Instant::now();
    eventually(
        "the memory role's backends to be idle",
        Duration::from_secs(5),
        async || {
            let backends = pool_backends(&mut observer, &database, locker_pid).await;
            backends
                .iter()
                .all(|(state, _)| state == "idle")
                .then_some(())
                .ok_or(format!("{backends:?}"))
        },
    )
    .await;
    let settled = settled.elapsed();
    let after = pool_backends(&mut observer, &database, locker_pid).await;
    for marker in ["deadline", "hung-up"] {
        assert_eq!(
            count_marker(&mut observer, &user, marker).await,
            0,
            "the abandoned Remember ({marker}) was committed"
        );
    }

    // The pool (two connections) serves at full speed: nothing is held.
    let started = Instant::now();
    for i in 0..20 {
        memory
            .remember(CONTEXT, "note", json!({ "marker": format!("after-{i}") }))
            .await
            .unwrap();
    }
    let twenty = started.elapsed();
    assert!(
        twenty < Duration::from_secs(2),
        "20 Remembers took {twenty:?}"
    );
    println!(
        "abandoned on a row lock: DEADLINE_EXCEEDED after {} ms; during the lock the memory role's backends were {during:?}; {} ms after the release they were {after:?}; nothing committed; 20 Remembers on the 2-connection pool then took {} ms",
        deadline_answer.as_millis(),
        settled.as_millis(),
        twenty.as_millis()
    );
}

/// Resident memory of this process (the services run in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_responses_cannot_pin_unbounded_memory() {
    let pair = spawn_pair_with(PairSettings::default()).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("reader@example.com").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context(CONTEXT, "").await.unwrap();
    // 100 memories of 16 KB: one Recall page of 100 is about 1.7 MB.
    let text = "x".repeat(16 * 1024);
    for i in 0..100 {
        memory
            .remember(CONTEXT, "note", json!({ "i": i, "text": text }))
            .await
            .unwrap();
    }
    let page = memory
        .recall(pb::RecallRequest {
            context: CONTEXT.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let page_bytes = page.encoded_len();

    let frame = raw_h2::grpc_frame(
        &pb::RecallRequest {
            context: CONTEXT.into(),
            page_size: 100,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let authorization = format!("Bearer {}", user.access_token);

    let before = rss_kib();
    const CONNECTIONS: usize = 4;
    const STREAMS: usize = 32;
    let mut held = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut send = raw_h2::connect(pair.memory_addr).await;
        for _ in 0..STREAMS {
            send = send.ready().await.unwrap();
            let request = raw_h2::grpc_request(
                "/ninaivalaigal.memory.v1.MemoryService/Recall",
                &[("authorization", &authorization)],
            );
            let (response, mut stream) = send.send_request(request, false).unwrap();
            stream.send_data(frame.clone(), true).unwrap();
            held.push((response, stream));
        }
        connections.push(send);
    }
    // Let the server run every handler and push what the windows allow.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pinned = rss_kib();
    // The service still answers others while those responses sit unread.
    let started = Instant::now();
    memory.context_names().await.unwrap();
    let other = started.elapsed();

    drop(held);
    drop(connections);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let released = rss_kib();
    let grown_mib = pinned.saturating_sub(before) / 1024;
    let streams = CONNECTIONS * STREAMS;
    println!(
        "never-read responses: {streams} Recall streams of {page_bytes} bytes each ({} MiB in all) on {CONNECTIONS} connections: RSS {} MiB before, {} MiB while unread (+{grown_mib} MiB), {} MiB after the client left; another client answered in {} ms meanwhile",
        streams * page_bytes / (1024 * 1024),
        before / 1024,
        pinned / 1024,
        released / 1024,
        other.as_millis()
    );
    // Generous: the server may hold each unread response whole (hyper
    // sends an encoded message as flow control allows), so the bound is
    // streams x response size, here about 220 MiB; it must not be more.
    let bound = (streams * page_bytes / (1024 * 1024)) as u64 * 3 / 2 + 64;
    assert!(
        grown_mib < bound,
        "RSS grew {grown_mib} MiB (bound {bound} MiB)"
    );
    assert!(
        other < Duration::from_secs(2),
        "another client waited {other:?}"
    );
}
