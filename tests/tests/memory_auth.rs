//! The memory-service trusts only a valid access token: every refusal is
//! UNAUTHENTICATED before any database work, revocations take effect within
//! the poll interval, and health and reflection need no token.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use ninaivalaigal::{auth_v1::LogoutRequest, memory_v1 as pb};
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer,
    keys::{TestKey, claims_for, harness_key, mint, mint_hs256, unsigned},
    memory::MemoryAs,
    spawn_pair, spawn_pair_with,
};
use serde_json::json;
use tonic::{Code, Request, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn session(user: &TestUser) -> uuid::Uuid {
    user.session_id.parse().expect("session id is a UUID")
}

/// Calls every MemoryService RPC with `token` (or none) and returns the statuses.
async fn every_rpc(pair: &TestPair, token: Option<&str>) -> Vec<Status> {
    fn request<T>(msg: T, token: Option<&str>) -> Request<T> {
        match token {
            Some(token) => bearer(msg, token),
            None => Request::new(msg),
        }
    }
    let mut client = pair.memory_client().await;
    let name = || "ctx".to_owned();
    vec![
        client
            .create_context(request(
                pb::CreateContextRequest {
                    name: name(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .err(),
        client
            .list_contexts(request(pb::ListContextsRequest::default(), token))
            .await
            .err(),
        client
            .get_context(request(pb::GetContextRequest { name: name() }, token))
            .await
            .err(),
        client
            .delete_context(request(pb::DeleteContextRequest { name: name() }, token))
            .await
            .err(),
        client
            .start_recording(request(pb::StartRecordingRequest { name: name() }, token))
            .await
            .err(),
        client
            .stop_recording(request(pb::StopRecordingRequest { name: name() }, token))
            .await
            .err(),
        client
            .remember(request(
                pb::RememberRequest {
                    context: name(),
                    r#type: "note".into(),
                    data: Some(Default::default()),
                },
                token,
            ))
            .await
            .err(),
        client
            .recall(request(
                pb::RecallRequest {
                    context: name(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .err(),
        client
            .forget(request(pb::ForgetRequest { id: 1 }, token))
            .await
            .err(),
    ]
    .into_iter()
    .map(|status| status.expect("the call is refused"))
    .collect()
}

async fn health(pair: &TestPair, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(pair.memory_channel().await);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers without a token")
        .into_inner()
        .status()
}

#[tokio::test]
async fn every_rpc_refuses_a_request_without_a_token() {
    let pair = spawn_pair().await;
    for status in every_rpc(&pair, None).await {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("Bearer"), "{}", status.message());
    }
    // Health needs no token.
    assert_eq!(
        health(&pair, "ninaivalaigal.memory.v1.MemoryService").await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let pair = spawn_pair().await;
    let user = pair.register_user("eve@example.test").await;
    let sid = session(&user);
    let now = chrono::Utc::now().timestamp();
    let claims = || claims_for(user.id, &user.email, sid);

    // A token the harness mints like the auth-service does is accepted...
    let good = mint(&claims());
    MemoryAs::new(pair.memory_client().await, &good)
        .context_names()
        .await
        .unwrap();

    // ...and these are not.
    let other_key = TestKey::generate();
    let mut harness_kid = Header::new(Algorithm::EdDSA);
    harness_kid.kid = Some(harness_key().kid.clone());
    let mut expired = claims();
    (expired.iat, expired.nbf, expired.exp) = (now - 7200, now - 7200, now - 3600);
    let mut future = claims();
    (future.nbf, future.exp) = (now + 3600, now + 7200);
    let mut wrong_audience = claims();
    wrong_audience.aud = "someone-else".into();
    let mut wrong_issuer = claims();
    wrong_issuer.iss = "someone-else".into();
    let mut mismatched = claims();
    mismatched.sub = (user.id + 1).to_string();
    let mut tampered = good.split('.').map(str::to_owned).collect::<Vec<_>>();
    let mut forged = claims();
    forged.user_id += 1;
    forged.sub = forged.user_id.to_string();
    tampered[1] = base64_url(&serde_json::to_vec(&forged).unwrap());

    let cases = [
        ("not a JWT", "Bearer not-a-jwt".to_owned()),
        ("empty bearer", "Bearer ".to_owned()),
        ("other scheme", format!("Basic {good}")),
        ("no scheme", good.clone()),
        ("expired", format!("Bearer {}", mint(&expired))),
        ("not yet valid", format!("Bearer {}", mint(&future))),
        (
            "wrong signature",
            format!(
                "Bearer {}",
                other_key.sign_with_header(&harness_kid, &claims())
            ),
        ),
        (
            "unknown key",
            format!("Bearer {}", other_key.sign(&claims())),
        ),
        ("tampered claims", format!("Bearer {}", tampered.join("."))),
        ("alg none", format!("Bearer {}", unsigned(&claims()))),
        (
            "HS256 to an EdDSA service",
            format!("Bearer {}", mint_hs256(&claims(), &[7; 40])),
        ),
        (
            "wrong audience",
            format!("Bearer {}", mint(&wrong_audience)),
        ),
        ("wrong issuer", format!("Bearer {}", mint(&wrong_issuer))),
        (
            "sub and user_id disagree",
            format!("Bearer {}", mint(&mismatched)),
        ),
    ];
    for (what, header) in cases {
        let mut request = Request::new(pb::ListContextsRequest::default());
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let status = pair
            .memory_client()
            .await
            .list_contexts(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    let expired_status = MemoryAs::new(pair.memory_client().await, &mint(&expired))
        .context_names()
        .await
        .unwrap_err();
    assert!(
        expired_status.message().contains("expired"),
        "{}",
        expired_status.message()
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_revoked_session_is_refused_within_the_poll_interval() {
    let pair = spawn_pair().await;
    let user = pair.register_user("leaving@example.test").await;
    let other_session = pair.register_user("staying@example.test").await;
    let memory = pair.memory_as(&user).await;
    let staying = pair.memory_as(&other_session).await;
    memory.create_context("work", "").await.unwrap();

    pair.auth_client()
        .await
        .logout(bearer(LogoutRequest::default(), &user.access_token))
        .await
        .unwrap();
    // The harness polls every 0.2 s; allow generous slack on a busy machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        match memory.context_names().await {
            Err(status) => break status,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => panic!("the revoked token still works after 5 s"),
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "access token has been revoked; log in again"
    );
    // Every RPC refuses it, and other sessions are unaffected.
    for status in every_rpc(&pair, Some(&user.access_token)).await {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    staying.context_names().await.unwrap();
}

#[tokio::test]
async fn tokens_are_checked_before_any_database_work() {
    // The memory-service's database is unreachable: a bad token is still
    // UNAUTHENTICATED (never UNAVAILABLE), a good one gets UNAVAILABLE, and
    // health says NOT_SERVING.
    let pair = spawn_pair_with(PairSettings {
        memory_args: vec![
            "--database-url=postgres://ninaivalaigal_memory:x@127.0.0.1:1/nowhere".into(),
            "--db-timeout-seconds=1".into(),
            "--health-check-seconds=0.2".into(),
        ],
        ..Default::default()
    })
    .await;
    let user = pair.register_user("early@example.test").await;
    for status in every_rpc(&pair, None).await {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    for status in every_rpc(&pair, Some("garbage")).await {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let status = pair
        .memory_as(&user)
        .await
        .context_names()
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains("127.0.0.1:1"),
        "no internals: {}",
        status.message()
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health(&pair, "").await != ServingStatus::NotServing {
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stays SERVING without a database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        health(&pair, "ninaivalaigal.memory.v1.MemoryService").await,
        ServingStatus::NotServing
    );
}

#[tokio::test]
async fn without_the_auth_services_keys_requests_are_unavailable() {
    let pair = spawn_pair_with(PairSettings {
        memory_args: vec!["--auth-url=http://127.0.0.1:1".into()],
        ..Default::default()
    })
    .await;
    let user = pair.register_user("lonely@example.test").await;
    let status = pair
        .memory_as(&user)
        .await
        .context_names()
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("http://127.0.0.1:1"),
        "{}",
        status.message()
    );
    // A request without a token is still simply unauthenticated.
    for status in every_rpc(&pair, None).await {
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn hs256_mode_shares_the_secret_with_the_auth_service() {
    let secret = "a-shared-secret-of-at-least-32-bytes-for-tests";
    let pair = spawn_pair_with(PairSettings {
        auth_args: vec![format!("--jwt-secret={secret}")],
        memory_args: vec![format!("--jwt-secret={secret}")],
    })
    .await;
    let user = pair.register_user("hs@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("work", "").await.unwrap();
    memory
        .remember("work", "note", json!({"mode": "hs256"}))
        .await
        .unwrap();
    assert_eq!(memory.recall_context("work").await.unwrap().len(), 1);

    let claims = claims_for(user.id, &user.email, session(&user));
    for (what, token) in [
        (
            "another secret",
            mint_hs256(&claims, b"another-secret-of-at-least-32-bytes-long"),
        ),
        ("an EdDSA token", mint(&claims)),
    ] {
        let status = MemoryAs::new(pair.memory_client().await, &token)
            .context_names()
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
    }
}
