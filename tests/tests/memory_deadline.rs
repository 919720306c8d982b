//! A request's deadline reaches the database: a statement that would wait
//! past it is cancelled there (not left waiting after the client has been
//! told DEADLINE_EXCEEDED), and the service goes on serving.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use memory_service::config::Seconds;
use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::{
    PairSettings, TestPair, bearer, cluster::Role, eventually, spawn_pair, spawn_pair_with,
};
use tonic::{Code, Status};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Backends of the memory role in this database waiting for a lock.
async fn waiting_for_locks(conn: &mut AsyncPgConnection) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
          WHERE datname = current_database() AND usename = current_user \
            AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    .get_result::<Count>(conn)
    .await
    .unwrap()
    .n
}

/// Calls StartRecording while another session of the same user holds the
/// context row locked (as a long StartRecording would), with a client
/// deadline of `client_timeout` if given. Checks that the statement waited
/// and that, once the call has failed, the database stopped waiting even
/// though the lock is still held; then releases the lock and checks that
/// the service goes on serving. Returns the call's status.
async fn start_recording_past_the_deadline(
    pair: &TestPair,
    client_timeout: Option<Duration>,
) -> Status {
    let user = pair.register_user("patient@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("work", "").await.unwrap();

    let mut holder = pair.db.connect(Role::Memory).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SET LOCAL app.current_user_id = '{}'; \
             SELECT id FROM recording_contexts FOR UPDATE",
            user.id
        ))
        .await
        .unwrap();
    let mut observer = pair.db.connect(Role::Memory).await;

    let mut request = bearer(
        pb::StartRecordingRequest {
            name: "work".into(),
        },
        &user.access_token,
    );
    if let Some(timeout) = client_timeout {
        request.set_timeout(timeout);
    }
    let mut client = pair.memory_client().await;
    let call = tokio::spawn(async move { client.start_recording(request).await });
    eventually(
        "StartRecording to wait for the lock",
        Duration::from_secs(5),
        async || waiting_for_locks(&mut observer).await == 1,
    )
    .await;
    let status = call.await.unwrap().unwrap_err();

    // The statement ran with the request's deadline as its timeout.
    eventually(
        "the waiting statement to be cancelled at the deadline",
        Duration::from_secs(3),
        async || waiting_for_locks(&mut observer).await == 0,
    )
    .await;

    holder.batch_execute("ROLLBACK").await.unwrap();
    let started = memory.start_recording("work").await.unwrap();
    assert!(started.context.unwrap().recording);
    status
}

#[tokio::test]
async fn a_statement_waiting_past_the_server_deadline_is_cancelled_and_deadline_exceeded() {
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.transport.request_timeout_seconds = Seconds(Duration::from_millis(1500));
    }))
    .await;
    pair.wait_until_serving().await;
    let status = start_recording_past_the_deadline(&pair, None).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn a_client_deadline_reaches_the_database() {
    let pair = spawn_pair().await;
    let status = start_recording_past_the_deadline(&pair, Some(Duration::from_millis(1500))).await;
    // The service answers a little before the deadline, so the client
    // normally hears DEADLINE_EXCEEDED; on a starved machine its own timer
    // may fire first (CANCELLED, "Timeout expired"). Either way the
    // database stopped waiting, which the helper checked.
    assert!(
        status.code() == Code::DeadlineExceeded
            || (status.code() == Code::Cancelled && status.message().contains("Timeout")),
        "{status:?}"
    );
}
