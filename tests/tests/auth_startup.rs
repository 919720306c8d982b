//! Start-up refuses bad key settings with one line that names the setting.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use auth_service::{config::Settings, startup::Application};
use clap::Parser;
use ninaivalaigal_tests::keys::TestKey;

async fn build(extra: &[String]) -> Result<Application, String> {
    let mut args = vec![
        "auth-service".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        // Never connected to: the pool is lazy and these tests stop at start-up.
        "--database-url=postgres://nobody:nothing@127.0.0.1:9/none".to_owned(),
        "--bcrypt-cost=4".to_owned(),
    ];
    args.extend_from_slice(extra);
    let settings = Settings::try_parse_from(args).map_err(|error| error.to_string())?;
    Application::build(settings)
        .await
        .map_err(|error| format!("{error:#}"))
}

fn assert_one_line_naming(error: &str, settings: &[&str]) {
    assert!(!error.trim().contains('\n'), "one line: {error}");
    for setting in settings {
        assert!(error.contains(setting), "{error:?} should name {setting}");
    }
}

#[tokio::test]
async fn neither_or_both_of_key_and_secret_is_refused() {
    let error = build(&[]).await.err().unwrap();
    assert_one_line_naming(
        &error,
        &[
            "NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE",
            "NINAIVALAIGAL_JWT_SECRET",
        ],
    );
    let key = TestKey::generate();
    let file = key.write_private_key();
    let error = build(&[
        format!("--jwt-private-key-file={}", file.path.display()),
        format!("--jwt-secret={}", "s".repeat(40)),
    ])
    .await
    .err()
    .unwrap();
    assert_one_line_naming(
        &error,
        &[
            "NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE",
            "NINAIVALAIGAL_JWT_SECRET",
        ],
    );
}

#[tokio::test]
async fn a_missing_or_bad_private_key_file_is_refused() {
    let error = build(&["--jwt-private-key-file=/nonexistent/key.pem".into()])
        .await
        .err()
        .unwrap();
    assert_one_line_naming(
        &error,
        &["NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"],
    );

    // A public key where the private key belongs.
    let key = TestKey::generate();
    let public = key.write_public_key();
    let error = build(&[format!("--jwt-private-key-file={}", public.path.display())])
        .await
        .err()
        .unwrap();
    assert_one_line_naming(&error, &["NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE", "Ed25519"]);
}

#[tokio::test]
async fn a_bad_previous_public_key_file_is_refused() {
    let key = TestKey::generate();
    let private = key.write_private_key();
    let error = build(&[
        format!("--jwt-private-key-file={}", private.path.display()),
        format!("--jwt-public-key-files={}", private.path.display()),
    ])
    .await
    .err()
    .unwrap();
    assert_one_line_naming(&error, &["NINAIVALAIGAL_JWT_PUBLIC_KEY_FILES"]);
}

#[tokio::test]
async fn a_short_secret_is_refused() {
    let error = build(&["--jwt-secret=too-short".into()])
        .await
        .err()
        .unwrap();
    assert!(error.contains("32 bytes"), "{error}");
}

#[tokio::test]
async fn a_good_key_starts() {
    let key = TestKey::generate();
    let file = key.write_private_key();
    build(&[format!("--jwt-private-key-file={}", file.path.display())])
        .await
        .unwrap();
    build(&[format!("--jwt-secret={}", "s".repeat(40))])
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_get_unavailable_while_the_database_is_unreachable() {
    let key = TestKey::generate();
    let file = key.write_private_key();
    let application = build(&[
        format!("--jwt-private-key-file={}", file.path.display()),
        "--db-timeout-seconds=1".into(),
    ])
    .await
    .unwrap();
    let addr = application.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let mut auth = ninaivalaigal::auth_v1::auth_service_client::AuthServiceClient::new(
        ninaivalaigal_tests::pair::channel(addr).await,
    );
    let status = auth
        .register(ninaivalaigal::auth_v1::RegisterRequest {
            email: "ada@example.test".into(),
            password: ninaivalaigal_tests::TEST_PASSWORD.into(),
            name: "Ada".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("try again"), "{status:?}");
    assert!(
        !status.message().contains("nobody"),
        "no connection details"
    );
    // Health tells probes the truth: not serving without a database.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        ninaivalaigal_tests::pair::channel(addr).await,
    );
    for service in ["", "ninaivalaigal.auth.v1.AuthService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::NotServing,
            "{service:?}"
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
