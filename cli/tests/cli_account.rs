//! `eM` driven end to end against both running services: accounts,
//! credentials, token refresh, and what happens when a server is down.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{Duration, Utc};
use ninaivalaigal_tests::spawn_pair;
use serde_json::json;
use support::{Em, PASSWORD, age_saved_token, code, dead_url, expired_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_whoami_logout_then_commands_ask_for_login() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);

    let registered = em.register("ada@example.com", PASSWORD).await;
    registered.ok();
    assert!(
        registered
            .stdout
            .contains("Registered and logged in as ada@example.com")
    );

    let whoami = em.run(&["whoami", "--json"]).await;
    whoami.ok();
    let whoami = whoami.json();
    assert_eq!(whoami["user"]["email"], "ada@example.com");
    assert_eq!(whoami["user"]["name"], "Test user");
    assert_eq!(whoami["token_source"], "credentials_file");
    let old_access = em.credentials()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let logout = em.run(&["logout", "--json"]).await;
    logout.ok();
    assert_eq!(logout.json()["revoked"], true);
    assert!(
        !em.credentials_path().exists(),
        "logout deletes the credentials"
    );

    let after = em.run(&["whoami"]).await;
    after.expect_code(code::AUTH);
    assert!(
        after.stderr.contains("you are not logged in"),
        "{}",
        after.stderr
    );
    assert!(after.stderr.contains("run `eM login`"), "{}", after.stderr);
    em.run(&["contexts"]).await.expect_code(code::AUTH);

    // The session is revoked on the server too, not just forgotten locally.
    let mut stale = Em::new(&pair);
    stale.user_token = Some(old_access);
    let refused = stale.run(&["whoami"]).await;
    refused.expect_code(code::AUTH);
    assert!(
        refused.stderr.contains("NINAIVALAIGAL_USER_TOKEN"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reads_the_password_from_stdin_and_saves_private_credentials() {
    let pair = spawn_pair().await;
    pair.register_user("bob@example.com").await;
    let em = Em::new(&pair);

    let login = em
        .run_with_input(
            &[
                "login",
                "--email",
                "bob@example.com",
                "--password-stdin",
                "--json",
            ],
            &format!("{}\n", ninaivalaigal_tests::TEST_PASSWORD),
        )
        .await;
    login.ok();
    assert_eq!(login.json()["user"]["email"], "bob@example.com");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(em.credentials_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credentials are private to the user");
    }
    let saved = em.credentials();
    assert_eq!(saved["email"], "bob@example.com");
    assert_eq!(saved["server_url"], pair.memory_url());
    assert_eq!(saved["auth_url"], pair.auth_url());
    assert!(
        saved["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    em.run(&["whoami"]).await.ok();

    // Logging in again ends the session it replaces.
    let first_access = saved["access_token"].as_str().unwrap().to_owned();
    em.login("bob@example.com", ninaivalaigal_tests::TEST_PASSWORD)
        .await
        .ok();
    assert_ne!(em.credentials()["access_token"], saved["access_token"]);
    em.run(&["whoami"]).await.ok();
    let mut replaced = Em::new(&pair);
    replaced.user_token = Some(first_access);
    replaced.run(&["whoami"]).await.expect_code(code::AUTH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_authentication_error() {
    let pair = spawn_pair().await;
    pair.register_user("carol@example.com").await;
    let em = Em::new(&pair);

    let login = em.login("carol@example.com", "not the password").await;
    login.expect_code(code::AUTH);
    assert!(
        login.stderr.contains("wrong email or password"),
        "{}",
        login.stderr
    );
    assert!(!em.credentials_path().exists(), "nothing is saved");

    let json = em
        .run_with_input(
            &["login", "--email", "carol@example.com", "--json"],
            "not the password\n",
        )
        .await;
    json.expect_code(code::AUTH);
    let error: serde_json::Value = serde_json::from_str(&json.stderr).expect("JSON error");
    assert_eq!(error["error"]["kind"], "authentication");
    assert_eq!(error["error"]["exit_code"], code::AUTH);
    assert!(json.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_taken_email_is_a_conflict_and_bad_input_is_a_usage_error() {
    let pair = spawn_pair().await;
    pair.register_user("dan@example.com").await;
    let em = Em::new(&pair);

    let taken = em.register("dan@example.com", PASSWORD).await;
    taken.expect_code(code::CONFLICT);
    assert!(
        taken.stderr.contains("eM login --email dan@example.com"),
        "{}",
        taken.stderr
    );

    em.register("dan2@example.com", "short")
        .await
        .expect_code(code::USAGE);
    // No password on stdin at all.
    em.run_with_input(&["login", "--email", "dan@example.com"], "")
        .await
        .expect_code(code::USAGE);
    // A password is never accepted as an argument.
    em.run(&[
        "login",
        "--email",
        "dan@example.com",
        "--password",
        PASSWORD,
    ])
    .await
    .expect_code(code::USAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_before_the_call() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("erin@example.com", PASSWORD).await.ok();
    let before = em.credentials();
    let expired = expired_token(&before);
    age_saved_token(&em, expired.clone(), Utc::now() - Duration::minutes(5));

    let whoami = em.run(&["whoami", "--json"]).await;
    whoami.ok();
    assert_eq!(whoami.json()["user"]["email"], "erin@example.com");

    let after = em.credentials();
    assert_ne!(after["access_token"], json!(expired), "a new access token");
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "the refresh token rotated"
    );
    // The next command uses the new session without refreshing again.
    em.run(&["whoami"]).await.ok();
    assert_eq!(em.credentials()["refresh_token"], after["refresh_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_service_refuses_is_refreshed_and_the_call_retried() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("fay@example.com", PASSWORD).await.ok();
    let before = em.credentials();
    // The file believes the token is good for a day (e.g. a clock that is
    // wrong), but the service sees it has expired.
    let expired = expired_token(&before);
    age_saved_token(&em, expired.clone(), Utc::now() + Duration::days(1));

    em.run(&["whoami"]).await.ok();
    let after = em.credentials();
    assert_ne!(after["access_token"], json!(expired));
    assert_ne!(after["refresh_token"], before["refresh_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_asks_to_log_in_again() {
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("gus@example.com", PASSWORD).await.ok();
    let mut saved = em.credentials();
    saved["refresh_token"] = json!("not-a-refresh-token");
    em.write_credentials(&saved);
    age_saved_token(
        &em,
        expired_token(&saved),
        Utc::now() - Duration::minutes(1),
    );

    let whoami = em.run(&["whoami"]).await;
    whoami.expect_code(code::AUTH);
    assert!(
        whoami.stderr.contains("your session has expired"),
        "{}",
        whoami.stderr
    );
    assert!(
        whoami.stderr.contains("run `eM login`"),
        "{}",
        whoami.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_token_variable_overrides_the_saved_login() {
    let pair = spawn_pair().await;
    let other = pair.register_user("hal@example.com").await;
    let em = Em::new(&pair);
    em.register("ivy@example.com", PASSWORD).await.ok();
    assert_eq!(
        em.run(&["whoami", "--json"]).await.json()["user"]["email"],
        "ivy@example.com"
    );

    let mut overridden = Em::new(&pair);
    overridden.user_token = Some(other.access_token.clone());
    // Same saved login as `em`, but the variable wins.
    std::fs::create_dir_all(overridden.credentials_path().parent().unwrap()).unwrap();
    std::fs::copy(em.credentials_path(), overridden.credentials_path()).unwrap();
    let whoami = overridden.run(&["whoami", "--json"]).await;
    whoami.ok();
    assert_eq!(whoami.json()["user"]["email"], "hal@example.com");
    assert_eq!(whoami.json()["token_source"], "environment");

    // A bad token in the variable is not papered over by the saved login.
    overridden.user_token = Some("garbage".to_owned());
    let refused = overridden.run(&["whoami"]).await;
    refused.expect_code(code::AUTH);
    assert!(
        refused.stderr.contains("NINAIVALAIGAL_USER_TOKEN"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_gives_the_unavailable_code_and_says_where_it_looked() {
    let pair = spawn_pair().await;
    let memory_down = dead_url();
    let mut em = Em::with_urls(memory_down.clone(), pair.auth_url());
    em.user_token = Some(pair.register_user("jo@example.com").await.access_token);

    let contexts = em.run(&["contexts"]).await;
    contexts.expect_code(code::UNAVAILABLE);
    assert!(
        contexts
            .stderr
            .contains(&format!("is the memory-service running at {memory_down}?")),
        "{}",
        contexts.stderr
    );

    let auth_down = dead_url();
    let em = Em::with_urls(pair.memory_url(), auth_down.clone());
    let login = em.login("jo@example.com", PASSWORD).await;
    login.expect_code(code::UNAVAILABLE);
    assert!(
        login
            .stderr
            .contains(&format!("is the auth-service running at {auth_down}?")),
        "{}",
        login.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_the_exit_codes_and_bad_urls_are_usage_errors() {
    let em = Em::with_urls(
        "http://127.0.0.1:1".to_owned(),
        "http://127.0.0.1:2".to_owned(),
    );
    let help = em.run(&["--help"]).await;
    help.ok();
    for line in [
        "3  authentication error",
        "6  server unavailable",
        "NINAIVALAIGAL_USER_TOKEN",
    ] {
        assert!(
            help.stdout.contains(line),
            "help mentions {line}: {}",
            help.stdout
        );
    }
    let bad = Em::with_urls(
        "127.0.0.1:13370".to_owned(),
        "http://127.0.0.1:2".to_owned(),
    );
    let outcome = bad.run(&["contexts"]).await;
    outcome.expect_code(code::USAGE);
    assert!(
        outcome.stderr.contains("NINAIVALAIGAL_SERVER_URL"),
        "{}",
        outcome.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_refresh_once_and_keep_the_session() {
    // Refresh tokens are single use: if two processes each presented the
    // same one, the auth-service would revoke the whole session. The
    // credentials lock makes the second process reuse the first's result.
    let pair = spawn_pair().await;
    let em = Em::new(&pair);
    em.register("kim@example.com", PASSWORD).await.ok();
    let saved = em.credentials();
    age_saved_token(
        &em,
        expired_token(&saved),
        Utc::now() - Duration::minutes(1),
    );

    let runs = futures::future::join_all((0..4).map(|_| em.run(&["whoami", "--json"]))).await;
    for outcome in &runs {
        outcome.ok();
    }
    // The session survived: one more call works without logging in again.
    em.run(&["whoami"]).await.ok();
}
