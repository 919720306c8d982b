//! `eM export`, `eM import`, `eM remember --request-id` and `eM account
//! delete`, driven end to end against both running services.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod support;

use ninaivalaigal_tests::{TestPair, spawn_pair};
use serde_json::{Value, json};
use support::{Em, PASSWORD, code};

async fn logged_in(pair: &TestPair, email: &str) -> Em {
    let em = Em::new(pair);
    em.register(email, PASSWORD).await.ok();
    em
}

/// The lines of an export, parsed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_another_account_twice() {
    let pair = spawn_pair().await;
    let ada = logged_in(&pair, "ada@example.com").await;
    let bea = logged_in(&pair, "bea@example.com").await;
    ada.run(&["context", "create", "proj", "--description", "the shop"])
        .await
        .ok();
    let notes = [
        json!({"type": "note", "data": {"message": "deploy with make", "n": 0.1}}),
        json!({"type": "decision", "data": {"text": "\u{1b}[31mred\u{202e}", "deep": [[{}]]}}),
    ];
    for note in &notes {
        ada.run(&["remember", "--context", "proj", &note.to_string()])
            .await
            .ok();
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memories.jsonl");
    let file = file.to_str().unwrap();
    let exported = ada.run(&["export", "-o", file, "--json"]).await;
    exported.ok();
    assert_eq!(exported.json()["memories"], 2);
    let text = std::fs::read_to_string(file).unwrap();
    // Control and bidi characters are escapes in the file, not raw.
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    let exported = lines(&text);
    assert_eq!(exported[0]["kind"], "header");
    assert_eq!(exported[0]["format"], "ninaivalaigal-export");
    assert_eq!(exported[0]["version"], 1);
    assert_eq!(exported[1]["kind"], "context");
    assert_eq!(exported[1]["description"], "the shop");
    assert_eq!(exported[2]["data"], notes[0]["data"]);
    assert_eq!(exported[3]["data"], notes[1]["data"]);
    // To stdout, the same lines.
    let to_stdout = ada.run(&["export", "--context", "proj"]).await;
    to_stdout.ok();
    assert_eq!(lines(&to_stdout.stdout)[1..], exported[1..]);

    let first = bea.run(&["import", file, "--json"]).await;
    first.ok();
    let first = first.json();
    assert_eq!(first["contexts_created"], 1, "{first}");
    assert_eq!(first["memories_created"], 2, "{first}");
    let again = bea.run(&["import", file, "--json"]).await;
    again.ok();
    let again = again.json();
    assert_eq!(again["memories_created"], 0, "{again}");
    assert_eq!(again["memories_skipped"], 2, "{again}");
    assert_eq!(again["contexts_skipped"], 1, "{again}");

    // Bea's export holds Ada's memories with their times, byte for byte.
    let copy = bea.run(&["export"]).await;
    copy.ok();
    let copy = lines(&copy.stdout);
    for (original, copied) in exported[1..].iter().zip(&copy[1..]) {
        for field in [
            "kind",
            "name",
            "description",
            "context",
            "type",
            "data",
            "create_time",
        ] {
            assert_eq!(original.get(field), copied.get(field), "{field}");
        }
    }
    assert_eq!(copy.len(), exported.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_named_and_nothing_is_imported() {
    let pair = spawn_pair().await;
    let ada = logged_in(&pair, "ada@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let header = r#"{"kind":"header","format":"ninaivalaigal-export","version":1,"exported_at":"2026-12-01T00:00:00Z"}"#;
    let context = r#"{"kind":"context","name":"p","description":""}"#;
    let memory = r#"{"kind":"memory","id":1,"context":"p","type":"note","data":{},"create_time":"2026-11-01T00:00:00Z"}"#;
    std::fs::write(
        &file,
        format!("{header}\n{context}\n{memory}\n{{\"kind\":\"memory\"}}\n"),
    )
    .unwrap();
    let refused = ada.run(&["import", file.to_str().unwrap()]).await;
    refused.expect_code(code::USAGE);
    assert!(refused.stderr.contains("line 4"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("nothing was imported"),
        "{}",
        refused.stderr
    );
    let contexts = ada.run(&["contexts", "--json"]).await;
    assert_eq!(contexts.json()["contexts"].as_array().unwrap().len(), 0);

    // A newer version is refused by name.
    std::fs::write(&file, header.replace("\"version\":1", "\"version\":2")).unwrap();
    let newer = ada.run(&["import", file.to_str().unwrap()]).await;
    newer.expect_code(code::USAGE);
    assert!(newer.stderr.contains("version 2"), "{}", newer.stderr);

    // The server's refusal names the line: a memory from the future.
    let future = memory.replace("2026-11-01", "2999-01-01");
    std::fs::write(&file, format!("{header}\n{context}\n{future}\n")).unwrap();
    let refused = ada.run(&["import", file.to_str().unwrap()]).await;
    refused.expect_code(code::USAGE);
    assert!(refused.stderr.contains("line 3"), "{}", refused.stderr);
    assert!(refused.stderr.contains("create_time"), "{}", refused.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_with_a_request_id_stores_once_and_account_delete_erases() {
    let pair = spawn_pair().await;
    let ada = logged_in(&pair, "ada@example.com").await;
    ada.run(&["start", "--context", "proj"])
        .await
        .expect_code(code::NOT_FOUND);
    ada.run(&["context", "create", "proj"]).await.ok();
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let note = r#"{"type": "note", "data": {"message": "once"}}"#;
    let args = [
        "remember",
        "--context",
        "proj",
        "--request-id",
        id,
        note,
        "--json",
    ];
    let first = ada.run(&args).await;
    first.ok();
    assert_eq!(first.json()["already_stored"], false);
    assert_eq!(first.json()["request_id"], id);
    let second = ada.run(&args).await;
    second.ok();
    assert_eq!(second.json()["already_stored"], true);
    assert_eq!(second.json()["memory"]["id"], first.json()["memory"]["id"]);
    let other = r#"{"type": "note", "data": {"message": "twice"}}"#;
    ada.run(&["remember", "--context", "proj", "--request-id", id, other])
        .await
        .expect_code(code::CONFLICT);

    // Without a terminal and without --yes nothing is erased.
    let unconfirmed = ada
        .run_with_input(&["account", "delete"], &format!("{PASSWORD}\n"))
        .await;
    unconfirmed.expect_code(code::USAGE);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    let wrong = ada
        .run_with_input(
            &["account", "delete", "--yes", "--password-stdin"],
            "wrong password\n",
        )
        .await;
    wrong.expect_code(code::AUTH);
    assert!(
        wrong.stderr.contains("nothing was deleted"),
        "{}",
        wrong.stderr
    );
    let erased = ada
        .run_with_input(
            &["account", "delete", "--yes", "--password-stdin", "--json"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    erased.ok();
    let receipt = erased.json();
    assert_eq!(receipt["contexts"], 1, "{receipt}");
    assert_eq!(receipt["memories"], 1, "{receipt}");
    assert_eq!(receipt["credentials_removed"], true, "{receipt}");
    assert!(receipt["erase_time"].is_string(), "{receipt}");
    ada.run(&["whoami"]).await.expect_code(code::AUTH);
}
