//! The memory-service trusts only a valid access token: every refusal is
//! UNAUTHENTICATED before any database work, revocations take effect within
//! the poll interval, and health and reflection need no token.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use memory_service::config::Seconds;
use ninaivalaigal::{auth_v1::LogoutRequest, memory_v1 as pb};
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer, eventually,
    keys::{TestKey, claims_for, harness_key, mint, mint_hs256, unsigned},
    memory::MemoryAs,
    pair::{AuthSettings, auth_settings},
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
                    request_id: String::new(),
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
        client
            .remember_many(request(pb::RememberManyRequest::default(), token))
            .await
            .err(),
        client
            .export_memories(request(pb::ExportMemoriesRequest::default(), token))
            .await
            .err(),
        client
            .import_memories(request(pb::ImportMemoriesRequest::default(), token))
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
    let status = eventually(
        "the revoked token to be refused",
        Duration::from_secs(5),
        async || memory.context_names().await.err(),
    )
    .await;
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
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.database.database_url = "postgres://ninaivalaigal_memory:x@127.0.0.1:1/nowhere"
            .parse()
            .unwrap();
        s.database.db_timeout_seconds = 1;
        s.transport.health_check_seconds = Seconds(Duration::from_millis(200));
    }))
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

    eventually(
        "health to say NOT_SERVING without a database",
        Duration::from_secs(10),
        async || health(&pair, "").await == ServingStatus::NotServing,
    )
    .await;
    assert_eq!(
        health(&pair, "ninaivalaigal.memory.v1.MemoryService").await,
        ServingStatus::NotServing
    );
}

#[tokio::test]
async fn without_the_auth_services_keys_requests_are_unavailable() {
    let pair = spawn_pair_with(
        PairSettings::default().memory(|s| s.auth_url = "http://127.0.0.1:1".into()),
    )
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
    let pair = spawn_pair_with(
        PairSettings::default()
            .auth(move |s| {
                s.jwt.secret = Some(secret.parse().unwrap());
                s.jwt_private_key_file = None;
            })
            .memory(move |s| s.jwt.secret = Some(secret.parse().unwrap())),
    )
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

#[tokio::test]
async fn the_memory_service_may_start_before_the_auth_service() {
    // Reserve a port for an auth-service that is not running yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pair = spawn_pair_with(
        PairSettings::default().memory(move |s| s.auth_url = format!("http://127.0.0.1:{port}")),
    )
    .await;
    // The pair's own auth-service signs with the same harness key.
    let user = pair.register_user("patient@example.test").await;
    let memory = pair.memory_as(&user).await;
    let status = memory.context_names().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // Now the auth-service at the configured URL comes up.
    let key_file = harness_key().write_private_key();
    let (stop, served) = start_auth_service(&pair, port, &key_file.path, |_| {}).await;

    let names = eventually(
        "the memory-service to fetch the keys",
        Duration::from_secs(15),
        async || {
            let names = memory.context_names().await;
            if let Err(status) = &names {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            }
            names
        },
    )
    .await;
    assert!(names.is_empty());
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

/// Starts another auth-service on `port`, on the pair's database, signing
/// with the key in `private_key_file`.
async fn start_auth_service(
    pair: &TestPair,
    port: u16,
    private_key_file: &std::path::Path,
    change: impl FnOnce(&mut AuthSettings),
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = auth_settings(&pair.db, private_key_file);
    settings.listen_addr = ([127, 0, 0, 1], port).into();
    change(&mut settings);
    let service = auth_service::startup::Application::build(settings)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(service.run_until(async {
        let _ = stopped.await;
    }));
    (stop, served)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_token_signed_by_a_new_key_makes_the_memory_service_fetch_the_keys_again() {
    let port = free_port();
    let pair = spawn_pair_with(
        PairSettings::default().memory(move |s| s.auth_url = format!("http://127.0.0.1:{port}")),
    )
    .await;
    // The auth-service at the URL signs with the harness key at first...
    let old_key = harness_key().write_private_key();
    let (stop, served) = start_auth_service(&pair, port, &old_key.path, |_| {}).await;
    let old_user = pair.register_user("before@example.test").await;
    let old_client = pair.memory_as(&old_user).await;
    eventually(
        "the memory-service to fetch the first keys",
        Duration::from_secs(15),
        async || old_client.context_names().await,
    )
    .await;
    let _ = stop.send(());
    served.await.unwrap().unwrap();

    // ...then it is replaced by one with a new key, still publishing the old one.
    let new_key = TestKey::generate();
    let new_private = new_key.write_private_key();
    let old_public = harness_key().write_public_key();
    let old_public_path = old_public.path.clone();
    let (stop, served) = start_auth_service(&pair, port, &new_private.path, |s| {
        s.jwt_public_key_files = vec![old_public_path];
    })
    .await;
    let mut auth = ninaivalaigal::auth_v1::auth_service_client::AuthServiceClient::new(
        ninaivalaigal_tests::pair::channel(([127, 0, 0, 1], port).into()).await,
    );
    let registered = auth
        .register(ninaivalaigal::auth_v1::RegisterRequest {
            email: "after@example.test".into(),
            password: ninaivalaigal_tests::TEST_PASSWORD.into(),
            name: "After".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let new_token = registered.session.unwrap().access_token;
    let new_client = MemoryAs::new(pair.memory_client().await, &new_token);
    // On-demand fetches are rate-limited (a few seconds apart), so the new
    // key is picked up within that time, not necessarily on the first call.
    eventually(
        "the memory-service to fetch the new key",
        Duration::from_secs(15),
        async || {
            let names = new_client.context_names().await;
            if let Err(status) = &names {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            }
            names
        },
    )
    .await;
    // Tokens of the old key keep working while it is published.
    pair.memory_as(&old_user)
        .await
        .context_names()
        .await
        .unwrap();
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let pair = spawn_pair().await;
    let user = pair.register_user("traced@example.test").await;
    let mut client = pair.memory_client().await;
    let response = client
        .list_contexts(bearer(
            pb::ListContextsRequest::default(),
            &user.access_token,
        ))
        .await
        .unwrap();
    assert!(response.metadata().get("x-request-id").is_some());
    // A client's own id is kept, also on refusals.
    let mut request = Request::new(pb::ListContextsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "my-id-42".parse().unwrap());
    let status = client.list_contexts(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "my-id-42");
}
