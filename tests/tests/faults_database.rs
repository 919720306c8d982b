//! The pair keeps its promises when the database server fails under
//! Remember traffic: killed with SIGKILL, restarted (`pg_ctl restart -m
//! fast`), or its connections cut (`pg_terminate_backend`). While it is
//! down every answer is UNAVAILABLE (or DEADLINE_EXCEEDED), none hangs past
//! its deadline, health reports NOT_SERVING; once it is back both services
//! recover by themselves; and every acknowledged memory is stored exactly
//! once. Each test runs its own PostgreSQL server ([`PrivateCluster`]),
//! never the shared one.
//!
//! Run with `--nocapture` to see the figures each test measured.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use memory_service::config::Seconds;
use ninaivalaigal_tests::{
    PrivateCluster, TestPair, TestUser,
    cluster::Role,
    faults::{Calls, HealthWatch, Traffic, reconcile, stored_memories, wait_for_health},
    spawn_pair_with,
};
use tokio::time::{Instant, sleep};
use tonic_health::pb::health_check_response::ServingStatus;

/// The deadline of every call of the traffic.
const DEADLINE: Duration = Duration::from_secs(3);
/// Clients sending Remember calls at once.
const CLIENTS: usize = 4;
/// The context the traffic writes into.
const CONTEXT: &str = "faults";

/// A pair on a private cluster, with fast health checks and a short wait
/// for a pooled connection, and a user with a context.
async fn pair_on(cluster: &PrivateCluster) -> (TestPair, TestUser) {
    let pair = spawn_pair_with(
        cluster
            .pair_settings()
            .auth(|s| {
                s.transport.health_check_seconds = Seconds(Duration::from_millis(200));
                s.database.db_timeout_seconds = 1;
            })
            .memory(|s| {
                s.transport.health_check_seconds = Seconds(Duration::from_millis(200));
                s.database.db_timeout_seconds = 1;
            }),
    )
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("faults@example.com").await;
    pair.memory_as(&user)
        .await
        .create_context(CONTEXT, "fault injection")
        .await
        .unwrap();
    (pair, user)
}

/// Waits until a Remember through the pair succeeds again; returns how long.
async fn wait_for_remember(pair: &TestPair, user: &TestUser) -> Duration {
    let start = Instant::now();
    let memory = pair.memory_as(user).await;
    ninaivalaigal_tests::eventually(
        "a Remember to succeed again",
        Duration::from_secs(15),
        async || {
            memory
                .remember(
                    CONTEXT,
                    "probe",
                    serde_json::json!({ "marker": "recovery" }),
                )
                .await
        },
    )
    .await;
    start.elapsed()
}

/// The database check after a fault: every acknowledged memory exactly
/// once (the recovery probes aside).
async fn check_database(cluster: &PrivateCluster, calls: &Calls) -> String {
    let mut conn = cluster.superuser().await;
    let stored: Vec<_> = stored_memories(&mut conn)
        .await
        .into_iter()
        .filter(|memory| memory.marker.as_deref() != Some("recovery"))
        .collect();
    reconcile(calls, &stored).to_string()
}

fn status_names(changes: &[(Instant, ServingStatus)]) -> Vec<ServingStatus> {
    changes.iter().map(|(_, status)| *status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_killed_with_sigkill() {
    let cluster = PrivateCluster::start_new().await;
    let (pair, user) = pair_on(&cluster).await;
    let memory_health = HealthWatch::start(pair.memory_addr);
    let auth_health = HealthWatch::start(pair.auth_addr);
    let traffic = Traffic::start(
        pair.memory_addr,
        &user.access_token,
        CONTEXT,
        CLIENTS,
        DEADLINE,
    );
    sleep(Duration::from_millis(300)).await;

    cluster.kill_9().await;
    let killed = Instant::now();
    let not_serving = wait_for_health(
        pair.memory_addr,
        ServingStatus::NotServing,
        Duration::from_secs(5),
    )
    .await;
    wait_for_health(
        pair.auth_addr,
        ServingStatus::NotServing,
        Duration::from_secs(5),
    )
    .await;
    // Down for a while: calls keep coming and must all be refused properly
    // (each waits up to db_timeout_seconds, 1 s, for a connection).
    sleep(Duration::from_millis(2500)).await;

    let restarting = Instant::now();
    cluster.start().await;
    let started = restarting.elapsed();
    wait_for_health(
        pair.memory_addr,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    let serving = restarting.elapsed();
    wait_for_health(
        pair.auth_addr,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    let recovered = wait_for_remember(&pair, &user).await;
    sleep(Duration::from_millis(300)).await;
    let calls = traffic.stop().await;
    let (memory_health, auth_health) = (memory_health.stop().await, auth_health.stop().await);

    calls.assert_refusals_are_retryable(DEADLINE);
    // Calls sent while the server was down (after the kill, before the
    // restart began, with time to fail) were all refused.
    let while_down: Vec<_> = calls
        .0
        .iter()
        .filter(|call| {
            call.started > killed + Duration::from_millis(100)
                && call.started + call.elapsed < restarting
        })
        .collect();
    assert!(
        !while_down.is_empty(),
        "no call was sent while the server was down"
    );
    assert!(
        while_down.iter().all(|call| call.outcome.is_err()),
        "a call succeeded while the server was down"
    );
    for changes in [&memory_health, &auth_health] {
        let statuses = status_names(changes);
        assert!(
            statuses.contains(&ServingStatus::NotServing)
                && statuses.last() == Some(&ServingStatus::Serving),
            "health went {statuses:?}"
        );
    }
    let figures = check_database(&cluster, &calls).await;
    println!(
        "SIGKILL: {calls}; {} calls while down, all refused; NOT_SERVING {} ms after the postmaster was gone; server up {} ms after `pg_ctl start` began, SERVING at {} ms, a Remember succeeding {} ms later; database: {figures}",
        while_down.len(),
        not_serving.as_millis(),
        started.as_millis(),
        serving.as_millis(),
        recovered.as_millis()
    );
    drop(pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restarted_fast() {
    let cluster = PrivateCluster::start_new().await;
    let (pair, user) = pair_on(&cluster).await;
    let memory_health = HealthWatch::start(pair.memory_addr);
    let traffic = Traffic::start(
        pair.memory_addr,
        &user.access_token,
        CONTEXT,
        CLIENTS,
        DEADLINE,
    );
    sleep(Duration::from_millis(300)).await;

    let restart = Instant::now();
    cluster.restart_fast().await;
    let restarted = restart.elapsed();
    let serving = wait_for_health(
        pair.memory_addr,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    wait_for_health(
        pair.auth_addr,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    let recovered = wait_for_remember(&pair, &user).await;
    sleep(Duration::from_millis(300)).await;
    let calls = traffic.stop().await;
    let memory_health = memory_health.stop().await;

    calls.assert_refusals_are_retryable(DEADLINE);
    // Calls sent once the server was back (and the pool had had a moment
    // to notice its dead connections) all succeeded.
    let after = restart + restarted + serving + Duration::from_millis(100);
    let failed_after: Vec<_> = calls
        .0
        .iter()
        .filter(|call| call.started > after && call.outcome.is_err())
        .collect();
    assert!(
        failed_after.is_empty(),
        "refused after recovery: {failed_after:?}"
    );
    let figures = check_database(&cluster, &calls).await;
    println!(
        "restart -m fast: {calls}; restart took {} ms; health went {:?}; a Remember succeeded {} ms after SERVING; database: {figures}",
        restarted.as_millis(),
        status_names(&memory_health),
        recovered.as_millis()
    );
    drop(pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_terminated() {
    let cluster = PrivateCluster::start_new().await;
    let (pair, user) = pair_on(&cluster).await;
    let traffic = Traffic::start(
        pair.memory_addr,
        &user.access_token,
        CONTEXT,
        CLIENTS,
        DEADLINE,
    );
    sleep(Duration::from_millis(300)).await;

    let mut terminated = 0;
    // When each termination began (connecting as the superuser) and when
    // pg_terminate_backend had signalled every backend.
    let mut kills = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        terminated += cluster.terminate_backends_of(Role::Memory).await;
        kills.push((began, Instant::now()));
        sleep(Duration::from_millis(300)).await;
    }
    let calls = traffic.stop().await;

    calls.assert_refusals_are_retryable(DEADLINE);
    // Only calls in flight while a termination ran (or within 50 ms after,
    // while the backends exit) were refused: no dead connection was handed
    // out afterwards.
    let late_refusals: Vec<_> = calls
        .0
        .iter()
        .filter(|call| call.outcome.is_err())
        .filter(|call| {
            !kills.iter().any(|(began, signalled)| {
                call.started + call.elapsed >= *began
                    && call.started <= *signalled + Duration::from_millis(50)
            })
        })
        .collect();
    assert!(
        late_refusals.is_empty(),
        "refusals long after a termination: {late_refusals:?}; {calls}"
    );
    let figures = check_database(&cluster, &calls).await;
    println!("pg_terminate_backend x3 ({terminated} backends): {calls}; database: {figures}");
    drop(pair);
}

/// The first Remember of a memory-service asks the database what kind of
/// PostgreSQL it is (`db::Deployment::detect`), which decides whether it
/// runs Remember as one statement. Asked while the database is down, the
/// call is UNAVAILABLE, the question stays open, and the first Remember
/// once it is back stores its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_remember_while_the_database_is_down_is_unavailable() {
    let cluster = PrivateCluster::start_new().await;
    let (pair, user) = pair_on(&cluster).await;
    let memory = pair.memory_as(&user).await;
    cluster.stop_fast().await;
    let refused = memory
        .remember(CONTEXT, "note", serde_json::json!({ "first": true }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    cluster.start().await;
    wait_for_remember(&pair, &user).await;
    let mut conn = cluster.superuser().await;
    let stored = stored_memories(&mut conn).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].marker.as_deref(), Some("recovery"));
    drop(pair);
}
