//! The revoked-session list guards every request: a memory-service that has
//! never read it serves nothing and is not ready, one whose list has gone
//! stale is not ready, and a revocation is honored for as long as its token
//! could still pass the expiry check (leeway included).

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use diesel_async::SimpleAsyncConnection;
use memory_service::{config::Seconds, startup::Application};
use ninaivalaigal_tests::{
    TestPair,
    cluster::Role,
    eventually,
    keys::{claims_for, mint},
    memory::MemoryAs,
    pair::{channel, memory_settings},
    spawn_pair,
};
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn owner_sql(pair: &TestPair, sql: &str) {
    let mut owner = pair.db.connect(Role::Owner).await;
    owner
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn health(addr: SocketAddr) -> ServingStatus {
    HealthClient::new(channel(addr).await)
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

const REVOKE: &str =
    "REVOKE SELECT (session_id, access_expires_at) ON revoked_sessions FROM ninaivalaigal_memory";
const GRANT: &str =
    "GRANT SELECT (session_id, access_expires_at) ON revoked_sessions TO ninaivalaigal_memory";

#[tokio::test]
async fn without_a_recent_revocation_list_the_service_is_not_ready_or_serving() {
    let pair = spawn_pair().await;
    let user = pair.register_user("careful@example.test").await;

    // A second memory-service on the same database, started while its role
    // cannot read the revocation list (its database still answers).
    owner_sql(&pair, REVOKE).await;
    let mut settings = memory_settings(&pair.db, pair.auth_addr);
    settings.transport.health_check_seconds = Seconds(Duration::from_millis(200));
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let memory = MemoryAs::new(
        ninaivalaigal::memory_v1::memory_service_client::MemoryServiceClient::new(
            channel(addr).await,
        ),
        &user.access_token,
    );

    let status = eventually(
        "requests to be refused for want of the revocation list",
        Duration::from_secs(10),
        async || {
            memory
                .context_names()
                .await
                .err()
                .filter(|status| status.message().contains("revoked-session list"))
        },
    )
    .await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(health(addr).await, ServingStatus::NotServing);

    // Once the list can be read, the service serves.
    owner_sql(&pair, GRANT).await;
    eventually(
        "SERVING once the list is read",
        Duration::from_secs(10),
        async || health(addr).await == ServingStatus::Serving,
    )
    .await;
    memory.context_names().await.unwrap();

    // When it can no longer be read, the list goes stale (after 5 s at
    // this poll interval) and the service is no longer ready.
    owner_sql(&pair, REVOKE).await;
    eventually(
        "NOT_SERVING once the list is stale",
        Duration::from_secs(15),
        async || health(addr).await == ServingStatus::NotServing,
    )
    .await;

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_revocation_holds_while_its_expired_token_is_within_the_leeway() {
    let pair = spawn_pair().await;
    let user = pair.register_user("late@example.test").await;
    let session: uuid::Uuid = user.session_id.parse().unwrap();
    // An access token of the session that expired 5 s ago: still accepted,
    // as the clock leeway (30 s by default) allows.
    let now = chrono::Utc::now().timestamp();
    let mut claims = claims_for(user.id, &user.email, session);
    claims.iat = now - 3600;
    claims.nbf = now - 3600;
    claims.exp = now - 5;
    let memory = MemoryAs::new(pair.memory_client().await, &mint(&claims));
    memory.context_names().await.unwrap();

    // The session is revoked; its newest access token expired 5 s ago.
    let mut auth = pair.db.connect(Role::Auth).await;
    auth.batch_execute(&format!(
        "INSERT INTO revoked_sessions (session_id, user_id, access_expires_at) \
         VALUES ('{session}', {}, now() - interval '5 seconds')",
        user.id
    ))
    .await
    .unwrap();
    let status = eventually(
        "the expired but still accepted token to be refused as revoked",
        Duration::from_secs(5),
        async || memory.context_names().await.err(),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "access token has been revoked; log in again"
    );
}
