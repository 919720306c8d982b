//! `eM` driven end to end against both running services: contexts,
//! recording, remember and recall, forget, and their errors.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{Duration, Utc};
use ninaivalaigal_tests::spawn_pair;
use serde_json::{Value, json};
use support::{Em, PASSWORD, age_saved_token, code, expired_token};

async fn logged_in(pair: &ninaivalaigal_tests::TestPair, email: &str) -> Em {
    let em = Em::new(pair);
    em.register(email, PASSWORD).await.ok();
    em
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_work_contexts_start_remember_recall_stop() {
    let pair = spawn_pair().await;
    let em = logged_in(&pair, "ada@example.com").await;

    let empty = em.run(&["contexts"]).await;
    empty.ok();
    assert!(empty.stdout.contains("No contexts yet"), "{}", empty.stdout);

    em.run(&["context", "create", "proj", "--description", "the project"])
        .await
        .ok();
    let shown = em.run(&["context", "show", "proj", "--json"]).await;
    shown.ok();
    let shown = shown.json();
    assert_eq!(shown["name"], "proj");
    assert_eq!(shown["description"], "the project");
    assert_eq!(shown["recording"], false);
    assert_eq!(shown["memory_count"], 0);

    let started = em.run(&["start", "--context", "proj"]).await;
    started.ok();
    assert!(
        started.stdout.contains("Recording into context proj"),
        "{}",
        started.stdout
    );

    // From the argument, into the recording context.
    let note = json!({"type": "note", "data": {"message": "deploy with make release", "n": 3, "tags": ["ops", null], "ratio": 0.25}});
    let remembered = em.run(&["remember", &note.to_string(), "--json"]).await;
    remembered.ok();
    let remembered = remembered.json();
    assert_eq!(remembered["memory"]["context"], "proj");
    assert_eq!(remembered["memory"]["type"], "note");
    assert_eq!(remembered["memory"]["data"], note["data"]);

    // From stdin, into a named context.
    em.run(&["context", "create", "other"]).await.ok();
    let decision =
        json!({"type": "decision", "data": {"message": "use postgres row level security"}});
    em.run_with_input(&["remember", "--context", "other"], &decision.to_string())
        .await
        .ok();

    let recalled = em.run(&["recall", "--query", "deploy", "--json"]).await;
    recalled.ok();
    let recalled = recalled.json();
    let memories = recalled["memories"].as_array().expect("a list of memories");
    assert_eq!(memories.len(), 1, "{recalled}");
    assert_eq!(memories[0]["data"], note["data"], "data comes back exactly");
    assert_eq!(memories[0]["id"], remembered["memory"]["id"]);
    assert!(memories[0]["create_time"].is_string());

    let table = em.run(&["recall", "--all-contexts"]).await;
    table.ok();
    assert!(
        table.stdout.contains("use postgres row level security"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("deploy with make release"),
        "{}",
        table.stdout
    );

    let typed = em
        .run(&["recall", "--all-contexts", "--type", "decision", "--json"])
        .await;
    let typed = typed.json();
    assert_eq!(typed["memories"].as_array().unwrap().len(), 1);
    assert_eq!(typed["memories"][0]["context"], "other");

    let list = em.run(&["contexts", "--json"]).await;
    list.ok();
    let list = list.json();
    let names: Vec<&Value> = list["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("other"), &json!("proj")]);
    let proj = &list["contexts"][1];
    assert_eq!(proj["recording"], true);
    assert_eq!(proj["memory_count"], 1);

    let stopped = em.run(&["stop", "--context", "proj"]).await;
    stopped.ok();
    assert!(
        stopped.stdout.contains("Stopped recording context proj"),
        "{}",
        stopped.stdout
    );

    // Nothing records now: remember without --context cannot guess.
    let orphan = em.run(&["remember", &note.to_string()]).await;
    orphan.expect_code(code::CONFLICT);
    assert!(
        orphan.stderr.contains("eM start --context"),
        "{}",
        orphan.stderr
    );

    let limited = em
        .run(&["recall", "--context", "proj", "--limit", "1", "--json"])
        .await;
    assert_eq!(limited.json()["memories"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_and_delete_remove_memories_and_say_when_nothing_is_there() {
    let pair = spawn_pair().await;
    let em = logged_in(&pair, "bob@example.com").await;
    em.run(&["context", "create", "scratch"]).await.ok();
    let id = em
        .run(&[
            "remember",
            r#"{"type": "note", "data": {"message": "temporary"}}"#,
            "--context",
            "scratch",
            "--json",
        ])
        .await
        .json()["memory"]["id"]
        .as_i64()
        .unwrap();

    em.run(&["forget", &id.to_string()]).await.ok();
    let again = em.run(&["forget", &id.to_string()]).await;
    again.expect_code(code::NOT_FOUND);
    assert!(again.stderr.contains("eM recall"), "{}", again.stderr);
    let recalled = em.run(&["recall", "--context", "scratch", "--json"]).await;
    assert_eq!(recalled.json()["memories"], json!([]));

    // Without a terminal, deleting needs --yes.
    em.run(&["context", "delete", "scratch"])
        .await
        .expect_code(code::USAGE);
    let deleted = em
        .run(&["context", "delete", "scratch", "--yes", "--json"])
        .await;
    deleted.ok();
    assert_eq!(deleted.json()["name"], "scratch");

    let missing = em.run(&["context", "show", "scratch"]).await;
    missing.expect_code(code::NOT_FOUND);
    assert!(missing.stderr.contains("eM contexts"), "{}", missing.stderr);
    em.run(&["start", "--context", "scratch"])
        .await
        .expect_code(code::NOT_FOUND);
    em.run(&["recall", "--context", "scratch"])
        .await
        .expect_code(code::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_usage_error_and_duplicates_a_conflict() {
    let pair = spawn_pair().await;
    let em = logged_in(&pair, "cy@example.com").await;
    em.run(&["context", "create", "proj"]).await.ok();

    let duplicate = em.run(&["context", "create", "proj"]).await;
    duplicate.expect_code(code::CONFLICT);
    assert!(
        duplicate.stderr.contains("eM start --context proj"),
        "{}",
        duplicate.stderr
    );
    em.run(&["context", "create", "no spaces allowed"])
        .await
        .expect_code(code::USAGE);

    for bad in [
        "not json",
        r#"{"type": "note", "data": "not an object"}"#,
        r#"{"type": "note"}"#,
        r#"{"type": "note", "data": {"n": 9007199254740993}}"#,
    ] {
        let outcome = em.run(&["remember", bad, "--context", "proj"]).await;
        outcome.expect_code(code::USAGE);
    }
    em.run(&["forget", "not-a-number"])
        .await
        .expect_code(code::USAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_see_another_users_contexts_through_the_cli() {
    let pair = spawn_pair().await;
    let ada = logged_in(&pair, "ada@example.com").await;
    let eve = logged_in(&pair, "eve@example.com").await;
    ada.run(&["context", "create", "secret"]).await.ok();
    ada.run(&[
        "remember",
        r#"{"type": "note", "data": {"message": "ada's secret"}}"#,
        "--context",
        "secret",
    ])
    .await
    .ok();

    eve.run(&["context", "show", "secret"])
        .await
        .expect_code(code::NOT_FOUND);
    eve.run(&["recall", "--context", "secret"])
        .await
        .expect_code(code::NOT_FOUND);
    let all = eve
        .run(&["recall", "--all-contexts", "--query", "secret", "--json"])
        .await;
    all.ok();
    assert_eq!(all.json()["memories"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_service_is_reached_with_a_refreshed_token_when_the_saved_one_expired() {
    let pair = spawn_pair().await;
    let em = logged_in(&pair, "dee@example.com").await;
    em.run(&["context", "create", "proj"]).await.ok();

    // Expired by the clock: refreshed before the call.
    let before = em.credentials();
    age_saved_token(
        &em,
        expired_token(&before),
        Utc::now() - Duration::minutes(1),
    );
    em.run(&[
        "remember",
        r#"{"type": "note", "data": {"message": "still here"}}"#,
        "--context",
        "proj",
    ])
    .await
    .ok();
    let middle = em.credentials();
    assert_ne!(middle["refresh_token"], before["refresh_token"]);

    // Refused by the memory-service although the file thinks it is fine:
    // refreshed and retried once.
    age_saved_token(&em, expired_token(&middle), Utc::now() + Duration::days(1));
    let recalled = em.run(&["recall", "--context", "proj", "--json"]).await;
    recalled.ok();
    assert_eq!(
        recalled.json()["memories"][0]["data"]["message"],
        "still here"
    );
    assert_ne!(em.credentials()["refresh_token"], middle["refresh_token"]);
}
