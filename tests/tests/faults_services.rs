//! The pair keeps its promises when one of its services goes away: the
//! memory-service killed with SIGKILL under Remember traffic loses nothing
//! it acknowledged, stores nothing twice and no half of anything, and its
//! clients see UNAVAILABLE (or a deadline), never a false success; with the
//! auth-service gone, the memory-service keeps serving valid tokens and
//! enforcing revocations, and once a new auth-service is up new sessions
//! and revocations work again. Figures print with `--nocapture`.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, process::Stdio, time::Duration};

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::auth_v1::LogoutRequest;
use ninaivalaigal_tests::{
    TestDb, TestUser, bearer,
    cluster::Role,
    db::set_rls_user,
    eventually,
    faults::{Traffic, reconcile, stored_memories, wait_for_health},
    spawn_pair,
};
use tokio::{
    process::{Child, Command},
    time::{Instant, sleep},
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const DEADLINE: Duration = Duration::from_secs(3);
const CONTEXT: &str = "faults";

/// The memory-service as a process of its own, from the binary cargo built
/// for this package (the service's own `main.rs`).
fn spawn_memory_process(db: &TestDb, addr: SocketAddr, auth_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_memory-service-under-test"))
        .env_clear()
        .env("NINAIVALAIGAL_DATABASE_URL", db.url(Role::Memory))
        .env("NINAIVALAIGAL_MEMORY_LISTEN_ADDR", addr.to_string())
        .env("NINAIVALAIGAL_AUTH_URL", auth_url)
        .env("NINAIVALAIGAL_REVOCATION_POLL_SECONDS", "0.2")
        .env("NINAIVALAIGAL_HEALTH_CHECK_SECONDS", "0.2")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the memory-service binary")
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Every memory of `user`, as the memory role sees them for that user.
async fn memories_of(
    conn: &mut AsyncPgConnection,
    user: &TestUser,
) -> Vec<ninaivalaigal_tests::faults::StoredMemory> {
    conn.batch_execute("BEGIN").await.unwrap();
    set_rls_user(conn, user.id).await.unwrap();
    let stored = stored_memories(conn).await;
    conn.batch_execute("COMMIT").await.unwrap();
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_service_killed_with_sigkill() {
    let pair = spawn_pair().await;
    let user = pair.register_user("killed@example.com").await;
    pair.memory_as(&user)
        .await
        .create_context(CONTEXT, "")
        .await
        .unwrap();
    let addr = free_addr();
    let mut process = spawn_memory_process(&pair.db, addr, &pair.auth_url());
    wait_for_health(addr, ServingStatus::Serving, Duration::from_secs(15)).await;

    let traffic = Traffic::start(addr, &user.access_token, CONTEXT, 4, DEADLINE);
    sleep(Duration::from_millis(400)).await;
    // From the signal until the process is reaped, calls are "in flight at
    // the kill": the process may still answer or die under them.
    let killing = Instant::now();
    process.start_kill().unwrap();
    process.wait().await.unwrap();
    let killed = Instant::now();
    sleep(Duration::from_millis(500)).await;

    let restart = Instant::now();
    let mut process = spawn_memory_process(&pair.db, addr, &pair.auth_url());
    wait_for_health(addr, ServingStatus::Serving, Duration::from_secs(15)).await;
    let serving = restart.elapsed();
    sleep(Duration::from_millis(400)).await;
    let calls = traffic.stop().await;
    process.start_kill().unwrap();

    // A call in flight when the process died got no answer; tonic's client
    // reports that as UNKNOWN "transport error" (its mapping of a broken
    // connection, not the server's answer). Only those calls may.
    let everything = ninaivalaigal_tests::faults::Calls(calls.0.clone());
    let mut calls = calls;
    let transport_errors = calls.take_transport_errors();
    for call in &transport_errors {
        assert!(
            call.started <= killed && call.started + call.elapsed >= killing,
            "{call:?} failed in transport but was not in flight at the kill"
        );
    }
    calls.assert_refusals_are_retryable(DEADLINE);
    let down: Vec<_> = calls
        .0
        .iter()
        .filter(|call| call.started > killed && call.started + call.elapsed < restart)
        .collect();
    assert!(!down.is_empty() && down.iter().all(|call| call.outcome.is_err()));
    let mut conn = pair.db.connect(Role::Memory).await;
    let stored = memories_of(&mut conn, &user).await;
    let figures = reconcile(&everything, &stored);
    // A refused call whose memory is stored was in flight at the kill.
    for &index in &figures.stored_but_refused_calls {
        let call = &everything.0[index];
        assert!(
            call.started <= killed && call.started + call.elapsed >= killing,
            "{call:?} was not in flight at the kill"
        );
    }
    let in_flight = everything
        .0
        .iter()
        .filter(|call| call.started <= killed && call.started + call.elapsed >= killing)
        .count();
    println!(
        "memory-service SIGKILL: {calls} (and {} in flight at the kill answered by the client's transport: UNKNOWN \"transport error\"); {in_flight} calls in flight at the kill; {} calls while it was down, all refused; the new process SERVING after {} ms; database: {figures}",
        transport_errors.len(),
        down.len(),
        serving.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_service_gone_memory_service_serves_and_enforces_revocations() {
    let mut pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.com").await;
    let bob = pair.register_user("bob@example.com").await;
    let carol = pair.register_user("carol@example.com").await;
    let (alice_mem, bob_mem, carol_mem) = (
        pair.memory_as(&alice).await,
        pair.memory_as(&bob).await,
        pair.memory_as(&carol).await,
    );
    alice_mem.create_context("a", "").await.unwrap();

    pair.stop_auth().await;
    let gone = Instant::now();
    // Valid tokens keep working, with the keys the memory-service holds,
    // and it stays SERVING (it has its keys and its database).
    for _ in 0..10 {
        alice_mem.context_names().await.unwrap();
        bob_mem.context_names().await.unwrap();
        sleep(Duration::from_millis(50)).await;
    }
    wait_for_health(
        pair.memory_addr,
        ServingStatus::Serving,
        Duration::from_secs(1),
    )
    .await;

    // A revocation recorded while the auth-service is gone (by an operator,
    // in the table the auth-service writes) takes effect: the memory-service
    // reads revoked_sessions itself.
    let mut auth_db = pair.db.connect(Role::Auth).await;
    diesel::sql_query(
        "INSERT INTO revoked_sessions (session_id, user_id, revoked_at, access_expires_at)
         VALUES ($1::uuid, $2, now(), now() + interval '1 hour')",
    )
    .bind::<Text, _>(&carol.session_id)
    .bind::<diesel::sql_types::BigInt, _>(carol.id)
    .execute(&mut auth_db)
    .await
    .unwrap();
    let revoked_at = Instant::now();
    let status = eventually(
        "the revocation to take effect without the auth-service",
        Duration::from_secs(5),
        async || carol_mem.context_names().await.err(),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let took_down = revoked_at.elapsed();
    let auth_down_for = gone.elapsed();

    // A new auth-service with the same key: new sessions work at the
    // memory-service, and a Logout there revokes within the poll interval.
    pair.start_auth().await;
    pair.wait_until_serving().await;
    let dave = pair.register_user("dave@example.com").await;
    pair.memory_as(&dave).await.context_names().await.unwrap();
    pair.auth_client()
        .await
        .logout(bearer(LogoutRequest::default(), &bob.access_token))
        .await
        .unwrap();
    let logout = Instant::now();
    let status = eventually(
        "Bob's logout to take effect",
        Duration::from_secs(5),
        async || bob_mem.context_names().await.err(),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let took_up = logout.elapsed();
    alice_mem.context_names().await.unwrap();
    println!(
        "auth-service gone for {} ms: valid tokens served throughout; a revocation recorded meanwhile took effect in {} ms; after a new auth-service started, a new session worked and a Logout took effect in {} ms (poll interval 200 ms)",
        auth_down_for.as_millis(),
        took_down.as_millis(),
        took_up.as_millis()
    );
}
