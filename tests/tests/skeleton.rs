//! The walking skeleton: both services come up on real sockets, report
//! SERVING, serve reflection, and the schema migrates cleanly.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::db::run_migrations;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use ninaivalaigal::settings::Seconds;
use ninaivalaigal_tests::{
    PairSettings, TestDb, cluster::Role, eventually, pair::channel, spawn_pair, spawn_pair_with,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

async fn health(addr: std::net::SocketAddr, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(channel(addr).await);
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health check answers");
    response.into_inner().status()
}

async fn listed_services(addr: std::net::SocketAddr) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a reflection response")
        .expect("one message");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

#[tokio::test]
async fn both_services_report_serving_over_real_sockets() {
    let pair = spawn_pair().await;
    assert_eq!(health(pair.auth_addr, "").await, ServingStatus::Serving);
    assert_eq!(
        health(pair.auth_addr, "ninaivalaigal.auth.v1.AuthService").await,
        ServingStatus::Serving
    );
    assert_eq!(health(pair.memory_addr, "").await, ServingStatus::Serving);
    assert_eq!(
        health(pair.memory_addr, "ninaivalaigal.memory.v1.MemoryService").await,
        ServingStatus::Serving
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn without_the_expected_schema_the_services_are_alive_but_not_ready() {
    let often = |s: &mut ninaivalaigal::server::TransportSettings| {
        s.health_check_seconds = Seconds(Duration::from_millis(100));
    };
    let pair = spawn_pair_with(
        PairSettings::default()
            .auth(move |s| often(&mut s.transport))
            .memory(move |s| often(&mut s.transport)),
    )
    .await;
    pair.wait_until_serving().await;
    let latest = ninaivalaigal::db::expected_schema_version().unwrap();
    let mut owner = pair.db.connect(Role::Owner).await;
    // As if the binaries were deployed before the migration job ran.
    owner
        .batch_execute(&format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = '{latest}'"
        ))
        .await
        .unwrap();
    for addr in [pair.auth_addr, pair.memory_addr] {
        eventually(
            "NOT_SERVING without the latest migration",
            Duration::from_secs(10),
            async || health(addr, "").await == ServingStatus::NotServing,
        )
        .await;
        // Liveness is about the process, not its dependencies: a probe on it
        // never restarts a pod for the database's sake.
        assert_eq!(health(addr, "liveness").await, ServingStatus::Serving);
    }
    owner
        .batch_execute(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{latest}')"
        ))
        .await
        .unwrap();
    pair.wait_until_serving().await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let pair = spawn_pair().await;
    let auth = listed_services(pair.auth_addr).await;
    for service in [
        "ninaivalaigal.auth.v1.AuthService",
        "ninaivalaigal.auth.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            auth.iter().any(|s| s == service),
            "auth-service lists {service}: {auth:?}"
        );
    }
    let memory = listed_services(pair.memory_addr).await;
    for service in [
        "ninaivalaigal.memory.v1.MemoryService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            memory.iter().any(|s| s == service),
            "memory-service lists {service}: {memory:?}"
        );
    }
    // Each lists only what it serves, though both share one descriptor set.
    assert!(
        !auth.iter().any(|s| s.starts_with("ninaivalaigal.memory")),
        "{auth:?}"
    );
    assert!(
        !memory.iter().any(|s| s.starts_with("ninaivalaigal.auth")),
        "{memory:?}"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    // The template was built by running every migration on an empty
    // database; a clone of it has nothing left to apply.
    let db = TestDb::new().await;
    let applied = run_migrations(&db.database_url(Role::Owner))
        .await
        .expect("migrations run");
    assert!(
        applied.is_empty(),
        "nothing pending on a migrated database: {applied:?}"
    );
    let again = run_migrations(&db.database_url(Role::Owner))
        .await
        .expect("migrations run again");
    assert!(again.is_empty());
}
