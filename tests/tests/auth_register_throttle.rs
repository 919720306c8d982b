//! Register cannot be used to enumerate accounts cheaply or to starve
//! logins of password-hashing slots.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use ninaivalaigal::auth_v1::{LoginRequest, RegisterRequest};
use ninaivalaigal_tests::{PairSettings, TEST_PASSWORD, auth_rows, spawn_pair_with};
use tonic::Code;

fn register(email: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.into(),
        password: TEST_PASSWORD.into(),
        name: "Someone".into(),
    }
}

#[tokio::test]
async fn an_existing_email_costs_as_much_as_a_new_registration() {
    // At cost 12 a hash takes far longer than any database round trip.
    let pair = spawn_pair_with(PairSettings::default().auth(|s| s.bcrypt_cost = 12)).await;
    pair.wait_until_serving().await;
    let mut auth = pair.auth_client().await;
    auth.register(register("ada@example.test")).await.unwrap();
    let hash_time = {
        let started = Instant::now();
        auth.register(register("grace@example.test")).await.unwrap();
        started.elapsed()
    };
    let started = Instant::now();
    let status = auth
        .register(register("ADA@example.test"))
        .await
        .unwrap_err();
    let exists_time = started.elapsed();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        exists_time * 3 > hash_time,
        "\"exists\" took {exists_time:?}, a new registration {hash_time:?}"
    );
}

#[tokio::test]
async fn a_login_is_served_while_registrations_flood() {
    // One hashing slot, each hash ~0.1 s: a login queued behind forty
    // registrations would wait for all of them.
    let pair = spawn_pair_with(PairSettings::default().auth(|s| {
        s.bcrypt_cost = 11;
        s.hashing_concurrency = Some(1);
        s.hashing_queue_timeout_seconds = 60;
        s.registrations_per_client = 1000;
    }))
    .await;
    pair.wait_until_serving().await;
    let user = pair.register_user("ada@example.test").await;

    let finished = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for n in 0..40 {
        let mut auth = pair.auth_client().await;
        let finished = finished.clone();
        flood.push(tokio::spawn(async move {
            let result = auth
                .register(register(&format!("flood{n}@example.test")))
                .await;
            finished.fetch_add(1, Ordering::SeqCst);
            result.map(|_| ())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let login = pair
        .auth_client()
        .await
        .login(LoginRequest {
            email: user.email.clone(),
            password: TEST_PASSWORD.into(),
        })
        .await;
    let finished_before_login = finished.load(Ordering::SeqCst);
    for registration in &flood {
        registration.abort();
    }
    let login = login.unwrap_or_else(|status| panic!("the login failed: {status:?}"));
    assert!(login.into_inner().session.is_some());
    // Relative, not absolute: the login overtook nearly all of the flood.
    assert!(
        finished_before_login < 10,
        "the login waited for {finished_before_login} of 40 registrations"
    );
}

#[tokio::test]
async fn a_burst_of_registrations_from_one_client_is_throttled_and_audited() {
    let pair = spawn_pair_with(PairSettings::default().auth(|s| {
        s.registrations_per_client = 3;
        s.registration_recovery_seconds = 3600;
    }))
    .await;
    pair.wait_until_serving().await;
    let mut auth = pair.auth_client().await;
    auth.register(register("one@example.test")).await.unwrap();
    auth.register(register("two@example.test")).await.unwrap();
    // A taken email counts too: probing for accounts costs the same.
    let status = auth
        .register(register("one@example.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    for email in ["three@example.test", "one@example.test"] {
        let status = auth.register(register(email)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("too many registrations"),
            "{status:?}"
        );
        let retry_after: u64 = status
            .metadata()
            .get("retry-after")
            .expect("a retry-after hint")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
    }
    // Logins from the same client are unaffected.
    auth.login(LoginRequest {
        email: "one@example.test".into(),
        password: TEST_PASSWORD.into(),
    })
    .await
    .unwrap();

    let events = auth_rows::audit_events(&pair.db).await;
    let refused: Vec<_> = events
        .iter()
        .filter(|event| event.event == "register_refused")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].detail.contains("email_taken"));
    assert!(refused[1].detail.contains("throttled"));
    assert_eq!(refused[1].email.as_deref(), Some("three@example.test"));
    assert_eq!(refused[1].client_addr.as_deref(), Some("127.0.0.1"));
}
