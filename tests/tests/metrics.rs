//! The metrics endpoints: after a known set of calls, each service's
//! `GET /metrics` counts exactly those calls per RPC and status code, times
//! them, and shows the pool, token rejections by reason, failed and
//! throttled logins, the revocation list and the key fetches. A path that
//! names no RPC of the service is counted as `unknown`, so a client cannot
//! add series. The endpoint is off unless configured.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use ninaivalaigal::{
    auth_v1::LoginRequest,
    memory_v1::{GetContextRequest, ListContextsRequest},
};
use ninaivalaigal_tests::{
    PairSettings, TestPair, bearer, keys,
    metrics::{Scrape, get, scrape},
    raw_h2, spawn_pair, spawn_pair_with,
};
use serde_json::json;
use tonic::Code;

const REQUESTS: &str = "ninaivalaigal_grpc_requests_total";
const DURATION_COUNT: &str = "ninaivalaigal_grpc_request_duration_seconds_count";
const MEMORY: &str = "/ninaivalaigal.memory.v1.MemoryService";
const AUTH: &str = "/ninaivalaigal.auth.v1.AuthService";

fn with_metrics() -> PairSettings {
    let any_port: Option<SocketAddr> = Some("127.0.0.1:0".parse().unwrap());
    PairSettings::default()
        .auth(move |s| s.metrics.metrics_listen_addr = any_port)
        .memory(move |s| s.metrics.metrics_listen_addr = any_port)
}

async fn started(settings: PairSettings) -> TestPair {
    let pair = spawn_pair_with(settings).await;
    pair.wait_until_serving().await;
    pair
}

fn requests(scrape: &Scrape, rpc: &str, code: &str) -> f64 {
    scrape.count(REQUESTS, &[("rpc", rpc), ("code", code)])
}

/// Sends one gRPC request to `path` over raw HTTP/2; returns its grpc-status.
async fn call_path(addr: SocketAddr, path: &str) -> String {
    let mut send = raw_h2::connect(addr).await;
    let (response, mut stream) = send
        .send_request(raw_h2::grpc_request(path, &[]), false)
        .unwrap();
    stream.send_data(raw_h2::grpc_frame(&[]), true).unwrap();
    let response = response.await.unwrap();
    let status = response.headers().get("grpc-status").cloned();
    match status {
        Some(status) => status.to_str().unwrap().to_owned(),
        None => {
            let mut body = response.into_body();
            while body.data().await.is_some() {}
            let trailers = body.trailers().await.unwrap().unwrap();
            trailers["grpc-status"].to_str().unwrap().to_owned()
        }
    }
}

#[tokio::test]
async fn memory_service_counts_every_rpc_by_status_and_rejections_by_reason() {
    let pair = started(with_metrics()).await;
    let addr = pair.memory_metrics_addr.expect("a metrics endpoint");
    let user = pair.register_user("metrics@example.test").await;
    let memory = pair.memory_as(&user).await;

    memory.create_context("work", "").await.unwrap();
    for n in 0..3 {
        memory
            .remember("work", "note", json!({ "n": n }))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let status = memory.get_context("missing").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let status = memory.create_context("work", "").await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    // Refused before any handler: no token, a token that is no JWT, an
    // expired one.
    let mut client = pair.memory_client().await;
    let status = client
        .list_contexts(ListContextsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .list_contexts(bearer(ListContextsRequest::default(), "not-a-jwt"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut claims = keys::claims_for(user.id, &user.email, uuid::Uuid::new_v4());
    claims.exp -= 7200;
    let expired = keys::mint(&claims);
    let status = client
        .get_context(bearer(
            GetContextRequest {
                name: "work".into(),
            },
            &expired,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Paths an attacker chooses all land in one `unknown` series.
    for path in ["/attacker.Chosen/Path1", "/attacker.Chosen/Path2"] {
        assert_eq!(call_path(pair.memory_addr, path).await, "12"); // UNIMPLEMENTED
    }

    let scrape = scrape(addr).await;
    let text = &scrape.text;
    assert_eq!(
        requests(&scrape, &format!("{MEMORY}/CreateContext"), "OK"),
        1.0,
        "{text}"
    );
    assert_eq!(
        requests(
            &scrape,
            &format!("{MEMORY}/CreateContext"),
            "ALREADY_EXISTS"
        ),
        1.0
    );
    assert_eq!(
        requests(&scrape, &format!("{MEMORY}/Remember"), "OK"),
        3.0,
        "{text}"
    );
    assert_eq!(
        requests(&scrape, &format!("{MEMORY}/GetContext"), "NOT_FOUND"),
        2.0
    );
    assert_eq!(
        requests(&scrape, &format!("{MEMORY}/GetContext"), "UNAUTHENTICATED"),
        1.0
    );
    assert_eq!(
        requests(
            &scrape,
            &format!("{MEMORY}/ListContexts"),
            "UNAUTHENTICATED"
        ),
        2.0
    );
    assert_eq!(requests(&scrape, "unknown", "UNIMPLEMENTED"), 2.0, "{text}");
    assert!(!text.contains("attacker"), "{text}");
    // Every call answered by this service, and nothing else: the 12 above
    // plus the health checks of the harness's wait.
    let health = requests(&scrape, "/grpc.health.v1.Health/Check", "OK");
    assert!(health >= 1.0, "{text}");
    let total: f64 = scrape.all(REQUESTS).iter().map(|(_, value)| value).sum();
    assert_eq!(total, 12.0 + health, "{text}");
    // Timed as well as counted, with real buckets.
    let remember_ok = [("rpc", &*format!("{MEMORY}/Remember")), ("code", "OK")];
    assert_eq!(scrape.count(DURATION_COUNT, &remember_ok), 3.0);
    assert!(
        text.contains("ninaivalaigal_grpc_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert_eq!(
        scrape.get("ninaivalaigal_grpc_requests_in_flight", &[]),
        Some(0.0)
    );

    let rejections = "ninaivalaigal_token_rejections_total";
    assert_eq!(
        scrape.count(rejections, &[("reason", "missing_token")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        scrape.count(rejections, &[("reason", "malformed_token")]),
        1.0
    );
    assert_eq!(scrape.count(rejections, &[("reason", "expired")]), 1.0);
    let refused: f64 = scrape.all(rejections).iter().map(|(_, value)| value).sum();
    assert_eq!(refused, 3.0, "{text}");

    // The pool: its size, and every checkout counted.
    assert_eq!(
        scrape.get("ninaivalaigal_db_pool_max_connections", &[]),
        Some(16.0)
    );
    let open = scrape.count("ninaivalaigal_db_pool_connections", &[("state", "idle")])
        + scrape.count("ninaivalaigal_db_pool_connections", &[("state", "in_use")]);
    assert!(open >= 1.0, "{text}");
    let checkouts = "ninaivalaigal_db_pool_checkouts_total";
    assert!(
        scrape.count(checkouts, &[("outcome", "direct")]) >= 7.0,
        "{text}"
    );
    assert_eq!(scrape.count(checkouts, &[("outcome", "timed_out")]), 0.0);
    assert!(
        scrape
            .get("ninaivalaigal_db_pool_wait_microseconds_total", &[])
            .is_some()
    );

    // The revocation list (read every 0.2 s here) and the key fetches.
    assert_eq!(scrape.get("ninaivalaigal_revoked_sessions", &[]), Some(0.0));
    let age = scrape
        .get("ninaivalaigal_revocation_list_age_seconds", &[])
        .expect("the list has been read");
    assert!((0.0..5.0).contains(&age), "{text}");
    let fetches = "ninaivalaigal_jwks_fetches_total";
    assert!(scrape.count(fetches, &[("result", "ok")]) >= 1.0, "{text}");
}

#[tokio::test]
async fn revocations_show_in_the_list_size() {
    let pair = started(with_metrics()).await;
    let addr = pair.memory_metrics_addr.unwrap();
    let user = pair.register_user("revoked@example.test").await;
    pair.auth_client()
        .await
        .logout(ninaivalaigal::auth_v1::LogoutRequest {
            refresh_token: user.refresh_token.clone(),
        })
        .await
        .unwrap();
    ninaivalaigal_tests::eventually(
        "the logout to show in the revoked-session count",
        std::time::Duration::from_secs(5),
        async || match scrape(addr)
            .await
            .get("ninaivalaigal_revoked_sessions", &[])
        {
            Some(1.0) => Ok(()),
            other => Err(other),
        },
    )
    .await;
}

#[tokio::test]
async fn auth_service_counts_failed_logins_by_reason_and_throttled_ones() {
    let pair = started(with_metrics().auth(|s| s.login_failures_per_account = 2)).await;
    let addr = pair.auth_metrics_addr.expect("a metrics endpoint");
    let user = pair.register_user("throttled@example.test").await;
    let login = async |email: &str, password: &str| {
        pair.auth_client()
            .await
            .login(LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .map(|_| ())
            .unwrap_err()
            .code()
    };
    for _ in 0..2 {
        assert_eq!(
            login(&user.email, "wrong password").await,
            Code::Unauthenticated
        );
    }
    assert_eq!(
        login(&user.email, "wrong password").await,
        Code::ResourceExhausted
    );
    assert_eq!(
        login("nobody@example.test", "any password").await,
        Code::Unauthenticated
    );

    let scrape = scrape(addr).await;
    let text = &scrape.text;
    let failures = "ninaivalaigal_login_failures_total";
    assert_eq!(
        scrape.count(failures, &[("reason", "wrong_password")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        scrape.count(failures, &[("reason", "unknown_email")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        scrape.count(failures, &[("reason", "account_disabled")]),
        0.0
    );
    let throttled = "ninaivalaigal_throttled_total";
    assert_eq!(
        scrape.count(throttled, &[("attempt", "login")]),
        1.0,
        "{text}"
    );
    assert_eq!(scrape.count(throttled, &[("attempt", "registration")]), 0.0);
    assert_eq!(
        requests(&scrape, &format!("{AUTH}/Register"), "OK"),
        1.0,
        "{text}"
    );
    assert_eq!(
        requests(&scrape, &format!("{AUTH}/Login"), "UNAUTHENTICATED"),
        3.0
    );
    assert_eq!(
        requests(&scrape, &format!("{AUTH}/Login"), "RESOURCE_EXHAUSTED"),
        1.0
    );
    assert_eq!(
        scrape.get("ninaivalaigal_db_pool_max_connections", &[]),
        Some(16.0)
    );
}

#[tokio::test]
async fn the_endpoint_is_off_by_default_and_serves_only_metrics() {
    let pair = spawn_pair().await;
    assert_eq!(pair.auth_metrics_addr, None);
    assert_eq!(pair.memory_metrics_addr, None);

    let pair = started(with_metrics()).await;
    let addr = pair.memory_metrics_addr.unwrap();
    let (status, _) = get(addr, "/").await;
    assert_eq!(status, 404);
    let (status, _) = get(addr, "/metrics/../../etc/passwd").await;
    assert_eq!(status, 404);
}
