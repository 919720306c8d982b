//! Two memory-service replicas on one database behind one name, as a
//! Kubernetes headless Service gives them: a client's requests are balanced
//! over both, request by request, on the channel the CLI and the
//! memory-service's own clients use (`ninaivalaigal::balance`), and when one
//! replica is killed (SIGKILL) the requests go on to the other once the
//! channel's probe has taken the dead address out (within a second).
//!
//! The channel is given the two addresses that the name would resolve to
//! (`balance::channel_to`): this machine has no DNS name with two loopback
//! addresses, and `balance::channel` only adds the lookup.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, process::Stdio, time::Duration};

use ninaivalaigal::memory_v1::memory_service_client::MemoryServiceClient;
use ninaivalaigal_tests::{
    PairSettings, cluster::Role, faults::wait_for_health, memory::MemoryAs, metrics::scrape,
    spawn_pair_with,
};
use tokio::process::Command;
use tonic_health::pb::health_check_response::ServingStatus;

const LIST: &str = "/ninaivalaigal.memory.v1.MemoryService/ListContexts";
const CALLS: usize = 40;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn answered(metrics: SocketAddr) -> f64 {
    scrape(metrics).await.count(
        "ninaivalaigal_grpc_requests_total",
        &[("rpc", LIST), ("code", "OK")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_both_replicas_and_survive_one_killed() {
    let any_port: Option<SocketAddr> = Some("127.0.0.1:0".parse().unwrap());
    let pair = spawn_pair_with(
        PairSettings::default().memory(move |s| s.metrics.metrics_listen_addr = any_port),
    )
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("replicas@example.test").await;

    // The second replica: the real binary, as a process of its own.
    let (second_addr, second_metrics) = (free_addr(), free_addr());
    let mut second = Command::new(env!("CARGO_BIN_EXE_memory-service-under-test"))
        .env_clear()
        .env(
            "NINAIVALAIGAL_DATABASE_URL",
            pair.db.service_url(Role::Memory),
        )
        .env("NINAIVALAIGAL_MEMORY_LISTEN_ADDR", second_addr.to_string())
        .env(
            "NINAIVALAIGAL_METRICS_LISTEN_ADDR",
            second_metrics.to_string(),
        )
        .env("NINAIVALAIGAL_AUTH_URL", pair.auth_url())
        .env("NINAIVALAIGAL_HEALTH_CHECK_SECONDS", "0.2")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the memory-service binary");
    wait_for_health(second_addr, ServingStatus::Serving, Duration::from_secs(15)).await;
    let first_metrics = pair.memory_metrics_addr.unwrap();

    let uri = "http://memory.ninaivalaigal.svc:13370".parse().unwrap();
    let channel = ninaivalaigal::balance::channel_to(
        &uri,
        "memory.ninaivalaigal.svc",
        &[pair.memory_addr, second_addr],
        |endpoint, _| Ok(endpoint.timeout(Duration::from_secs(5))),
    )
    .unwrap();
    let client = MemoryAs::new(MemoryServiceClient::new(channel), &user.access_token);

    for _ in 0..CALLS {
        client.list_contexts(10, "").await.unwrap();
    }
    let (first, second_count) = (
        answered(first_metrics).await,
        answered(second_metrics).await,
    );
    println!("{CALLS} calls: {first} to the first replica, {second_count} to the second");
    assert_eq!(first + second_count, CALLS as f64);
    // Random choices between two: fewer than 5 of 40 on one side would
    // happen about once in 100,000 runs.
    assert!(
        first >= 5.0 && second_count >= 5.0,
        "{first} / {second_count}"
    );

    second.start_kill().unwrap();
    second.wait().await.unwrap();
    // Calls in the second after the kill may still be sent to the dead
    // address (UNAVAILABLE, never reaching a server); then it is probed
    // out of the channel.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = answered(first_metrics).await;
    let mut failures = Vec::new();
    for _ in 0..CALLS {
        if let Err(status) = client.list_contexts(10, "").await {
            failures.push(status);
        }
    }
    let after = answered(first_metrics).await - first;
    println!(
        "after the kill: {after} of {CALLS} answered by the first replica, failures: {failures:?}"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(after, CALLS as f64);
}
