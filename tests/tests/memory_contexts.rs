//! Contexts through real gRPC: create, list, get, delete, start and stop
//! recording, with every error status a client can get.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use ninaivalaigal::memory_v1::{self as pb, Visibility};
use ninaivalaigal_tests::{memory::MemoryAs, spawn_pair};
use serde_json::json;
use tonic::Code;

async fn setup() -> (ninaivalaigal_tests::TestPair, MemoryAs) {
    let pair = spawn_pair().await;
    let user = pair.register_user("ada@example.test").await;
    let memory = pair.memory_as(&user).await;
    (pair, memory)
}

#[tokio::test]
async fn create_get_list_and_delete_a_context() {
    let (_pair, memory) = setup().await;
    let created = memory
        .create_context("project-x", "the X project")
        .await
        .unwrap();
    assert_eq!(created.name, "project-x");
    assert_eq!(created.description, "the X project");
    assert_eq!(created.visibility(), Visibility::Private);
    assert!(!created.recording);
    assert_eq!(created.memory_count, 0);
    assert!(created.create_time.is_some() && created.update_time.is_some());

    memory
        .remember("project-x", "note", json!({"a": 1}))
        .await
        .unwrap();
    memory
        .remember("project-x", "note", json!({"a": 2}))
        .await
        .unwrap();
    let got = memory.get_context("project-x").await.unwrap();
    assert_eq!(got.memory_count, 2);
    assert_eq!(got.create_time, created.create_time);

    let listed = memory.list_contexts(0, "").await.unwrap();
    assert_eq!(listed.contexts.len(), 1);
    assert_eq!(listed.contexts[0].memory_count, 2);
    assert!(listed.next_page_token.is_empty());

    assert_eq!(memory.delete_context("project-x").await.unwrap(), 2);
    assert_eq!(
        memory.get_context("project-x").await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(memory.context_names().await.unwrap().is_empty());
    // The name is free again, and the new context starts empty.
    let again = memory.create_context("project-x", "").await.unwrap();
    assert_eq!(again.memory_count, 0);
    assert!(memory.recall_context("project-x").await.unwrap().is_empty());
}

#[tokio::test]
async fn create_context_refuses_duplicates_and_bad_input() {
    let (_pair, memory) = setup().await;
    memory.create_context("dup", "").await.unwrap();
    let status = memory.create_context("dup", "again").await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("dup"), "{}", status.message());

    for bad in ["", "-dash", "has space", "a/b", "ünicode", &"n".repeat(101)] {
        let status = memory.create_context(bad, "").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    let long = memory
        .create_context("ok", &"d".repeat(1001))
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    let visibility = memory
        .create_context_with(pb::CreateContextRequest {
            name: "vis".into(),
            description: String::new(),
            visibility: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(visibility.code(), Code::InvalidArgument);
    let explicit = memory
        .create_context_with(pb::CreateContextRequest {
            name: "vis".into(),
            description: String::new(),
            visibility: Visibility::Private.into(),
        })
        .await
        .unwrap();
    assert_eq!(explicit.visibility(), Visibility::Private);
}

#[tokio::test]
async fn unknown_contexts_are_not_found_and_bad_names_invalid_in_every_rpc() {
    let (_pair, memory) = setup().await;
    let missing = [
        memory.get_context("nope").await.map(|_| ()),
        memory.delete_context("nope").await.map(|_| ()),
        memory.start_recording("nope").await.map(|_| ()),
        memory.stop_recording("nope").await.map(|_| ()),
        memory.remember("nope", "note", json!({})).await.map(|_| ()),
        memory.recall_context("nope").await.map(|_| ()),
    ];
    for result in missing {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains("nope"), "{}", status.message());
    }
    let invalid = [
        memory.get_context("").await.map(|_| ()),
        memory.delete_context("bad name").await.map(|_| ()),
        memory.start_recording("").await.map(|_| ()),
        memory.stop_recording("-x").await.map(|_| ()),
        memory
            .remember("bad name", "note", json!({}))
            .await
            .map(|_| ()),
        memory.recall_context("bad name").await.map(|_| ()),
    ];
    for result in invalid {
        assert_eq!(result.unwrap_err().code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn list_contexts_pages_by_name_without_gaps_or_duplicates() {
    let (_pair, memory) = setup().await;
    let names = ["e", "a", "d", "b", "c", "f", "g"];
    for name in names {
        memory.create_context(name, "").await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = memory.list_contexts(3, &token).await.unwrap();
        assert!(page.contexts.len() <= 3);
        seen.extend(page.contexts.into_iter().map(|c| c.name));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g"]);

    assert_eq!(
        memory
            .list_contexts(0, "garbage!")
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert_eq!(
        memory.list_contexts(-1, "").await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn recording_decides_where_remember_and_recall_go() {
    let (_pair, memory) = setup().await;
    memory.create_context("alpha", "").await.unwrap();
    memory.create_context("beta", "").await.unwrap();

    // Nothing recording: Remember and Recall without a context say what to do.
    for status in [
        memory
            .remember("", "note", json!({"x": 1}))
            .await
            .unwrap_err(),
        memory.recall_context("").await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "no context is recording; run `eM start --context NAME` or name a context"
        );
    }

    let started = memory.start_recording("alpha").await.unwrap();
    assert!(started.context.as_ref().unwrap().recording);
    assert_eq!(started.previous, "");
    let stored = memory.remember("", "note", json!({"x": 1})).await.unwrap();
    assert_eq!(stored.context, "alpha");
    assert_eq!(memory.recall_context("").await.unwrap().len(), 1);

    // Starting another stops the first.
    let switched = memory.start_recording("beta").await.unwrap();
    assert_eq!(switched.previous, "alpha");
    assert!(!memory.get_context("alpha").await.unwrap().recording);
    assert!(memory.get_context("beta").await.unwrap().recording);
    assert_eq!(
        memory
            .remember("", "note", json!({}))
            .await
            .unwrap()
            .context,
        "beta"
    );
    // Starting the recording one again changes nothing.
    assert_eq!(memory.start_recording("beta").await.unwrap().previous, "");

    let stopped = memory.stop_recording("beta").await.unwrap();
    assert!(!stopped.recording);
    let time = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos)).unwrap();
    assert!(time(stopped.update_time) >= time(switched.context.unwrap().update_time));
    // Stopping a context that is not recording is harmless.
    assert!(!memory.stop_recording("alpha").await.unwrap().recording);
    assert_eq!(
        memory
            .remember("", "note", json!({}))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let listed = memory.list_contexts(0, "").await.unwrap();
    assert!(listed.contexts.iter().all(|c| !c.recording));
}

#[tokio::test]
async fn concurrent_starts_leave_exactly_one_context_recording() {
    let (_pair, memory) = setup().await;
    let names: Vec<String> = (0..6).map(|i| format!("ctx{i}")).collect();
    for name in &names {
        memory.create_context(name, "").await.unwrap();
    }
    let starts = names.clone().into_iter().map(|name| {
        let memory = memory.clone();
        async move { memory.start_recording(&name).await }
    });
    for result in futures_join_all(starts).await {
        result.unwrap();
    }
    let listed = memory.list_contexts(0, "").await.unwrap();
    assert_eq!(listed.contexts.iter().filter(|c| c.recording).count(), 1);
}

/// Runs the futures as concurrent tasks and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// Seen in the answers of tests/isolation_random.rs: NOT_FOUND and
/// ALREADY_EXISTS named the context as `ContextName("work")`, the Rust
/// type's debug form, instead of the name the client sent.
#[tokio::test]
async fn error_messages_name_the_context_as_sent() {
    let (_pair, memory) = setup().await;
    let missing = memory.get_context("work").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().starts_with("context \"work\" not found"),
        "{}",
        missing.message()
    );
    memory.create_context("work", "").await.unwrap();
    let again = memory.create_context("work", "").await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(again.message(), "you already have a context named \"work\"");
}
