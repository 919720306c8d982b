//! Failed logins are throttled per account and per client address, with a
//! retry hint; other accounts are unaffected by one account's failures.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::auth_v1::{LoginRequest, RegisterRequest, WhoAmIRequest};
use ninaivalaigal_tests::{
    PairSettings, TEST_PASSWORD, TestPair, auth_rows, bearer, spawn_pair_with,
};
use tonic::Code;

async fn login(pair: &TestPair, email: &str, password: &str) -> Result<(), tonic::Status> {
    pair.auth_client()
        .await
        .login(LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .map(|_| ())
}

fn limits(per_account: u32, per_client: u32, recovery_seconds: u32) -> PairSettings {
    PairSettings::default().auth(move |s| {
        s.login_failures_per_account = per_account;
        s.login_failures_per_client = per_client;
        s.login_failure_recovery_seconds = recovery_seconds.into();
    })
}

fn assert_throttled(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("try again in"), "{status:?}");
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

#[tokio::test]
async fn an_account_is_throttled_after_repeated_failures_and_others_are_not() {
    let pair = spawn_pair_with(limits(3, 1000, 3600)).await;
    let victim = pair.register_user("victim@example.test").await;
    let bystander = pair.register_user("bystander@example.test").await;

    for _ in 0..3 {
        let status = login(&pair, &victim.email, "guess1234").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = login(&pair, &victim.email, "guess1234").await.unwrap_err();
    assert_throttled(&status);
    // Now even the right password waits: the guessing has stopped counting.
    let status = login(&pair, &victim.email, TEST_PASSWORD)
        .await
        .unwrap_err();
    assert_throttled(&status);
    // Same account in another spelling is the same key.
    let status = login(&pair, " VICTIM@example.test", TEST_PASSWORD)
        .await
        .unwrap_err();
    assert_throttled(&status);

    // Another account from the same address logs in, and fails normally.
    login(&pair, &bystander.email, TEST_PASSWORD).await.unwrap();
    let status = login(&pair, &bystander.email, "wrong one")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // The victim's existing session keeps working.
    pair.auth_client()
        .await
        .who_am_i(bearer(WhoAmIRequest {}, &victim.access_token))
        .await
        .unwrap();

    let events = auth_rows::audit_events(&pair.db).await;
    assert!(events.iter().any(|event| event.event == "login_throttled"
        && event.email.as_deref() == Some("victim@example.test")));
}

#[tokio::test]
async fn a_client_address_is_throttled_across_accounts() {
    let pair = spawn_pair_with(limits(1000, 3, 3600)).await;
    let user = pair.register_user("ada@example.test").await;
    for n in 0..3 {
        let status = login(&pair, &format!("nobody{n}@example.test"), "guess1234")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = login(&pair, "nobody3@example.test", "guess1234")
        .await
        .unwrap_err();
    assert_throttled(&status);
    // Every login from this address now waits...
    let status = login(&pair, &user.email, TEST_PASSWORD).await.unwrap_err();
    assert_throttled(&status);
    // ...but other requests from it are served.
    pair.auth_client()
        .await
        .register(RegisterRequest {
            email: "new@example.test".into(),
            password: TEST_PASSWORD.into(),
            name: "New".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_throttled_account_recovers_after_the_period() {
    let pair = spawn_pair_with(limits(1, 1000, 1)).await;
    let user = pair.register_user("ada@example.test").await;
    login(&pair, &user.email, "guess1234").await.unwrap_err();
    let status = login(&pair, &user.email, "guess1234").await.unwrap_err();
    assert_throttled(&status);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    login(&pair, &user.email, TEST_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn concurrent_guesses_cannot_race_past_the_account_limit() {
    let pair = spawn_pair_with(limits(5, 1000, 3600)).await;
    let victim = pair.register_user("victim@example.test").await;
    let mut guesses = Vec::new();
    for n in 0..20 {
        let mut auth = pair.auth_client().await;
        let email = victim.email.clone();
        guesses.push(tokio::spawn(async move {
            auth.login(LoginRequest {
                email,
                password: format!("guess number {n}"),
            })
            .await
            .map(|_| ())
        }));
    }
    let mut checked = 0;
    for guess in guesses {
        let status = guess.await.unwrap().unwrap_err();
        if status.code() == Code::Unauthenticated {
            assert_eq!(status.message(), "email or password is incorrect");
            checked += 1;
        } else {
            assert_throttled(&status);
        }
    }
    assert!(checked <= 5, "{checked} guesses were checked");
    // Every guess whose password was checked is audited as a failure; the
    // others never reached bcrypt.
    let failures = auth_rows::audit_events(&pair.db)
        .await
        .iter()
        .filter(|event| event.event == "login_failed")
        .count();
    assert!(failures <= 5, "{failures} guesses reached bcrypt");
}

#[tokio::test]
async fn unknown_emails_are_throttled_like_known_ones() {
    let pair = spawn_pair_with(limits(2, 1000, 3600)).await;
    let known = pair.register_user("known@example.test").await;
    for email in [known.email.as_str(), "unknown@example.test"] {
        for _ in 0..2 {
            let status = login(&pair, email, "guess1234").await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{email}");
        }
        let status = login(&pair, email, "guess1234").await.unwrap_err();
        assert_throttled(&status);
    }
}
