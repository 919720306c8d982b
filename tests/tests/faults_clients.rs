//! Clients that misbehave cannot make the memory-service hold what they
//! leave behind: a request abandoned mid-transaction (the client hangs up,
//! or its deadline passes, while the request waits on a row lock) leaves no
//! open transaction and no held pooled connection, and nothing it wrote is
//! committed; a client that never reads its responses cannot make the
//! server buffer without bound: its further requests are refused, and it is
//! cut off (figures printed with `--nocapture`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Integer, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::{memory_v1 as pb, settings::Seconds};
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer, cluster::Role, db::set_rls_user, eventually,
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
    set_rls_user(conn, user.id).await.unwrap();
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
    set_rls_user(&mut locker, user.id).await.unwrap();
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
async fn a_burst_of_unread_responses_stays_within_the_bound_and_refuses_others() {
    let pair = spawn_pair_with(PairSettings::default()).await;
    pair.wait_until_serving().await;
    let user = pair.register_user("reader@example.com").await;
    let memory = pair.memory_as(&user).await;
    fill_with_large_memories(&memory).await;
    let page = memory
        .recall(pb::RecallRequest {
            context: CONTEXT.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let page_bytes = page.encoded_len();

    let authorization = format!("Bearer {}", user.access_token);

    let before = rss_kib();
    const CONNECTIONS: usize = 4;
    const STREAMS: usize = 32;
    let mut held = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let send = raw_h2::connect(pair.memory_addr).await;
        let (send, streams) = unread_recalls(send, &authorization, STREAMS).await;
        held.extend(streams);
        connections.push(send);
    }
    // Once the server has made more of those responses than it lets
    // clients leave unread in all, others are refused at once, to retry (or
    // go to another replica), rather than add to it.
    let refused = eventually(
        "others refused while the burst sits unread",
        Duration::from_secs(30),
        async || memory.context_names().await.err(),
    )
    .await;
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("NINAIVALAIGAL_MAX_UNREAD_BYTES "),
        "{refused:?}"
    );
    // Let the last handlers finish before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pinned = rss_kib();
    let started = Instant::now();
    let refused = memory.context_names().await.unwrap_err();
    let other = started.elapsed();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    drop(held);
    drop(connections);
    eventually(
        "others served once the client left",
        Duration::from_secs(5),
        async || memory.context_names().await,
    )
    .await;
    let released = rss_kib();
    let grown_mib = pinned.saturating_sub(before) / 1024;
    let streams = CONNECTIONS * STREAMS;
    println!(
        "never-read responses: {streams} Recall streams of {page_bytes} bytes each ({} MiB in all) on {CONNECTIONS} connections: RSS {} MiB before, {} MiB while unread (+{grown_mib} MiB), {} MiB after the client left; another client was refused in {} ms meanwhile",
        streams * page_bytes / (1024 * 1024),
        before / 1024,
        pinned / 1024,
        released / 1024,
        other.as_millis()
    );
    // Generous: requests admitted together, before any of their responses
    // exist, are not refused, and the server holds each of those responses
    // whole (hyper sends an encoded message as flow control allows), so the
    // bound is streams x response size, here about 220 MiB (below the
    // in-flight limit x the Recall budget); it must not be more.
    let bound = (streams * page_bytes / (1024 * 1024)) as u64 * 3 / 2 + 64;
    assert!(
        grown_mib < bound,
        "RSS grew {grown_mib} MiB (bound {bound} MiB)"
    );
    assert!(
        other < Duration::from_secs(2),
        "another client waited {other:?} to be refused"
    );
}

/// A context of 100 memories of 16 KB: one Recall page of 100 is about
/// 1.7 MB.
async fn fill_with_large_memories(memory: &ninaivalaigal_tests::memory::MemoryAs) {
    memory.create_context(CONTEXT, "").await.unwrap();
    let text = "x".repeat(16 * 1024);
    for i in 0..100 {
        memory
            .remember(CONTEXT, "note", json!({ "i": i, "text": text }))
            .await
            .unwrap();
    }
}

/// Sends `count` Recall requests of `context` on `send` and never reads
/// their responses; returns them so that they stay open.
async fn unread_recalls(
    mut send: h2::client::SendRequest<bytes::Bytes>,
    authorization: &str,
    count: usize,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    Vec<(h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>)>,
) {
    let frame = raw_h2::grpc_frame(
        &pb::RecallRequest {
            context: CONTEXT.into(),
            page_size: 100,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let mut held = Vec::new();
    for _ in 0..count {
        send = send.ready().await.unwrap();
        let request = raw_h2::grpc_request(
            "/ninaivalaigal.memory.v1.MemoryService/Recall",
            &[("authorization", authorization)],
        );
        let (response, mut stream) = send.send_request(request, false).unwrap();
        stream.send_data(frame.clone(), true).unwrap();
        held.push((response, stream));
    }
    (send, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_refused_more_and_then_cut_off() {
    const MIB: u64 = 1024 * 1024;
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.transport.max_unread_bytes_per_connection = 4 * MIB;
        s.transport.max_unread_bytes = 8 * MIB;
        s.transport.keepalive_seconds = Seconds(Duration::from_secs(2));
        s.transport.keepalive_timeout_seconds = Seconds(Duration::from_secs(2));
        s.transport.connection_idle_seconds = Seconds(Duration::from_secs(8));
    }))
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("hoarder@example.com").await;
    let memory = pair.memory_as(&user).await;
    fill_with_large_memories(&memory).await;
    let authorization = format!("Bearer {}", user.access_token);

    // Six unread pages (about 10 MB) on one connection: over both limits
    // once the server has made them.
    let hoarder = raw_h2::connect(pair.memory_addr).await;
    let (mut hoarder, mut held) = unread_recalls(hoarder, &authorization, 6).await;

    // That connection is told to read what it has (once the server has made
    // more than its limit)...
    let status = eventually(
        "a refusal on the hoarding connection",
        Duration::from_secs(5),
        async || {
            let (ready, mut more) = unread_recalls(hoarder.clone(), &authorization, 1).await;
            hoarder = ready;
            let (mut response, stream) = more.pop().unwrap();
            match tokio::time::timeout(Duration::from_millis(200), &mut response).await {
                Ok(answered) => tonic::Status::from_header_map(answered.unwrap().headers()),
                Err(_) => {
                    // Admitted: one more unread page.
                    held.push((response, stream));
                    None
                }
            }
        },
    )
    .await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("NINAIVALAIGAL_MAX_UNREAD_BYTES_PER_CONNECTION"),
        "{status:?}"
    );
    // ... and while it holds more than the server's limit, others are asked
    // to come back (another replica may serve them).
    let refused = eventually(
        "others refused while the hoarder holds more than the server's limit",
        Duration::from_secs(5),
        async || memory.context_names().await.err(),
    )
    .await;
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("NINAIVALAIGAL_MAX_UNREAD_BYTES "),
        "{refused:?}"
    );

    // The hoarder answers pings but reads nothing: after the idle timeout
    // the server closes its connection, which frees what it held.
    let started = Instant::now();
    eventually(
        "the others are served again",
        Duration::from_secs(20),
        async || memory.context_names().await,
    )
    .await;
    let cut_off_after = started.elapsed();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut hoarder = hoarder;
        loop {
            match hoarder.ready().await {
                Err(error) => return error,
                Ok(ready) => hoarder = ready,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server closed the hoarding connection");
    println!(
        "never-reading connection: refused at once, others served again {} ms later ({closed})",
        cut_off_after.as_millis()
    );
    drop(held);
}
