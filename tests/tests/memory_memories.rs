//! Memories through real gRPC: Remember, Recall (filters, full text,
//! pagination) and Forget, exact data round trips, and every error status.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use ninaivalaigal::memory_v1::{self as pb};
use ninaivalaigal_tests::{
    PairSettings, TestPair,
    memory::{MemoryAs, fields, number, to_struct},
    spawn_pair, spawn_pair_with,
};
use prost_types::{Struct, Timestamp, Value, value::Kind};
use serde_json::json;
use tonic::Code;

async fn setup() -> (TestPair, MemoryAs) {
    let pair = spawn_pair().await;
    let user = pair.register_user("grace@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("work", "").await.unwrap();
    (pair, memory)
}

fn recall_in(context: &str) -> pb::RecallRequest {
    pb::RecallRequest {
        context: context.into(),
        ..Default::default()
    }
}

/// Debug text shows every bit that matters (`-0.0`, shortest round-trip
/// floats), unlike `==` on f64.
fn exact(data: &Struct) -> String {
    format!("{data:?}")
}

#[tokio::test]
async fn data_comes_back_exactly_as_given() {
    let (_pair, memory) = setup().await;
    let seed = to_struct(json!({
        "type": "note",
        "data": {
            "text": "Ninaivalaigal — நினைவலைகள் 🧠 \"quoted\" \\ back\nslash",
            "nested": {"deeper": {"deepest": [1, [2, [3, {}]], {"k": null}]}},
            "flags": [true, false, null],
            "empty_object": {},
            "empty_list": [],
            "": "empty key",
        }
    }));
    let numbers = fields(vec![
        ("zero", number(0.0)),
        ("negative_zero", number(-0.0)),
        ("third", number(1.0 / 3.0)),
        ("point_three", number(0.1 + 0.2)),
        ("max", number(f64::MAX)),
        ("min", number(f64::MIN)),
        ("tiny", number(5e-324)),
        ("smallest_normal", number(f64::MIN_POSITIVE)),
        ("max_safe", number(9_007_199_254_740_991.0)),
        ("beyond_safe", number(9_007_199_254_740_994.0)),
        ("big", number(1e300)),
        ("negative", number(-123456.789e-10)),
    ]);
    let empty = Struct::default();
    for data in [seed, numbers, empty] {
        let stored = memory
            .remember_struct("work", "note", Some(data.clone()))
            .await
            .unwrap();
        assert_eq!(exact(stored.data.as_ref().unwrap()), exact(&data));
        let recalled = memory.recall_context("work").await.unwrap();
        let again = recalled.iter().find(|m| m.id == stored.id).unwrap();
        assert_eq!(exact(again.data.as_ref().unwrap()), exact(&data));
        assert_eq!(again.r#type, "note");
        assert_eq!(again.context, "work");
        assert_eq!(again.create_time, stored.create_time);
    }
}

#[tokio::test]
async fn remember_refuses_bad_data_with_clear_messages() {
    let pair = spawn_pair_with(PairSettings::default().memory(|s| s.max_memory_bytes = 1000)).await;
    let user = pair.register_user("limits@example.test").await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("work", "").await.unwrap();

    let missing = memory
        .remember_struct("work", "note", None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().contains("data"), "{}", missing.message());

    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let data = fields(vec![(
            "outer",
            Value {
                kind: Some(Kind::StructValue(fields(vec![("n", number(bad))]))),
            },
        )]);
        let status = memory
            .remember_struct("work", "note", Some(data))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("data.outer.n"),
            "{}",
            status.message()
        );
    }
    let unset = fields(vec![("x", Value { kind: None })]);
    assert_eq!(
        memory
            .remember_struct("work", "note", Some(unset))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let nul = memory
        .remember("work", "note", json!({"s": "a\u{0}b"}))
        .await
        .unwrap_err();
    assert_eq!(nul.code(), Code::InvalidArgument);

    // At the limit is fine; one byte over is refused, naming the limit.
    let fits = json!({"t": "x".repeat(1000 - r#"{"t":""}"#.len())});
    memory.remember("work", "note", fits).await.unwrap();
    let too_big = json!({"t": "x".repeat(1001 - r#"{"t":""}"#.len())});
    let status = memory.remember("work", "note", too_big).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("1000 bytes"),
        "{}",
        status.message()
    );
    // Far over the limit is stopped by the transport, as soon as the
    // message's length arrives, with the same clear answer.
    let huge = json!({"t": "x".repeat(1_000_000)});
    let status = memory.remember("work", "note", huge).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("1000 bytes"), "{status:?}");
    // A memory within the limit is never refused for its protobuf size,
    // even one made only of numbers (11 bytes of protobuf per 2 of JSON).
    let numbers = json!({"n": vec![0; (1000 - r#"{"n":[]}"#.len()) / 2]});
    assert!(numbers.to_string().len() <= 1000);
    memory.remember("work", "note", numbers).await.unwrap();
    // JSON nested deeper than protobuf decodes is INVALID_ARGUMENT, not INTERNAL.
    let mut deep = json!(0);
    for _ in 0..60 {
        deep = json!([deep]);
    }
    let status = memory
        .remember("work", "note", json!({"deep": deep}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("nest"), "{status:?}");

    for bad_type in ["", " padded", "line\nbreak", &"t".repeat(65)] {
        let status = memory
            .remember("work", bad_type, json!({}))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad_type:?}");
    }
}

#[tokio::test]
async fn recall_filters_by_type_time_and_text() {
    let (_pair, memory) = setup().await;
    memory.create_context("other", "").await.unwrap();
    let first = memory
        .remember(
            "work",
            "note",
            json!({"text": "The migration is running smoothly"}),
        )
        .await
        .unwrap();
    let second = memory
        .remember(
            "work",
            "decision",
            json!({"why": {"detail": "We chose PostgreSQL row security"}}),
        )
        .await
        .unwrap();
    let third = memory
        .remember(
            "work",
            "command",
            json!({"cmd": "cargo test", "note": "ran tests"}),
        )
        .await
        .unwrap();
    let elsewhere = memory
        .remember("other", "note", json!({"text": "postgres elsewhere"}))
        .await
        .unwrap();

    // Newest first, only the named context.
    let all = memory.recall_context("work").await.unwrap();
    let ids: Vec<i64> = all.iter().map(|m| m.id).collect();
    assert_eq!(ids, [third.id, second.id, first.id]);

    let by_type = memory
        .recall_all(pb::RecallRequest {
            r#type: "decision".into(),
            ..recall_in("work")
        })
        .await
        .unwrap();
    assert_eq!(
        by_type.iter().map(|m| m.id).collect::<Vec<_>>(),
        [second.id]
    );

    // Time range: [second, third) holds only the second memory.
    let by_time = memory
        .recall_all(pb::RecallRequest {
            start_time: second.create_time,
            end_time: third.create_time,
            ..recall_in("work")
        })
        .await
        .unwrap();
    assert_eq!(
        by_time.iter().map(|m| m.id).collect::<Vec<_>>(),
        [second.id]
    );

    // Full text over nested string values, with stemming ("runs" ~ "running").
    let text = |query: &str| pb::RecallRequest {
        query: query.into(),
        ..recall_in("work")
    };
    let hits = memory.recall_all(text("runs")).await.unwrap();
    assert_eq!(hits.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
    let hits = memory
        .recall_all(text("postgresql security"))
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|m| m.id).collect::<Vec<_>>(), [second.id]);
    // The type is searchable too, and web-search syntax works.
    let hits = memory.recall_all(text("command")).await.unwrap();
    assert_eq!(hits.iter().map(|m| m.id).collect::<Vec<_>>(), [third.id]);
    let hits = memory
        .recall_all(text("\"row security\" -migration"))
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|m| m.id).collect::<Vec<_>>(), [second.id]);
    assert!(
        memory
            .recall_all(text("nonexistentword"))
            .await
            .unwrap()
            .is_empty()
    );

    // Every context at once, each memory naming its context.
    let everywhere = memory
        .recall_all(pb::RecallRequest {
            all_contexts: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(everywhere.len(), 4);
    assert_eq!(everywhere[0].id, elsewhere.id);
    assert_eq!(everywhere[0].context, "other");
    assert!(everywhere[1..].iter().all(|m| m.context == "work"));
}

#[tokio::test]
async fn recall_refuses_bad_requests() {
    let (_pair, memory) = setup().await;
    let cases = [
        pb::RecallRequest {
            all_contexts: true,
            ..recall_in("work")
        },
        pb::RecallRequest {
            page_size: -5,
            ..recall_in("work")
        },
        pb::RecallRequest {
            page_token: "not-a-token".into(),
            ..recall_in("work")
        },
        pb::RecallRequest {
            r#type: " x".into(),
            ..recall_in("work")
        },
        pb::RecallRequest {
            start_time: Some(Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            end_time: Some(Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            ..recall_in("work")
        },
        pb::RecallRequest {
            start_time: Some(Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..recall_in("work")
        },
        pb::RecallRequest {
            end_time: Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..recall_in("work")
        },
        pb::RecallRequest {
            query: "q".repeat(1001),
            ..recall_in("work")
        },
    ];
    for request in cases {
        let status = memory.recall(request.clone()).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{request:?}: {status:?}"
        );
    }
}

#[tokio::test]
async fn recall_pages_newest_first_without_gaps_or_duplicates() {
    let (_pair, memory) = setup().await;
    let mut stored = Vec::new();
    for i in 0..23 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        stored.push(
            memory
                .remember("work", kind, json!({"i": i}))
                .await
                .unwrap()
                .id,
        );
    }
    stored.reverse(); // newest first

    let mut request = pb::RecallRequest {
        page_size: 5,
        ..recall_in("work")
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = memory.recall(request.clone()).await.unwrap();
        assert!(page.memories.len() <= 5);
        seen.extend(page.memories.iter().map(|m| m.id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        // Memories added after the first page do not disturb the pages.
        if pages == 2 {
            memory
                .remember("work", "even", json!({"late": true}))
                .await
                .unwrap();
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, stored);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());

    // Filtered pages hold only matches, in order.
    let evens = memory
        .recall_all(pb::RecallRequest {
            r#type: "even".into(),
            page_size: 4,
            ..recall_in("work")
        })
        .await
        .unwrap();
    assert_eq!(evens.len(), 13);
    let key = |m: &pb::Memory| {
        let t = m.create_time.unwrap();
        (t.seconds, t.nanos, m.id)
    };
    assert!(evens.windows(2).all(|w| key(&w[0]) > key(&w[1])));

    // A token is bound to its query.
    let first = memory
        .recall(pb::RecallRequest {
            page_size: 2,
            ..recall_in("work")
        })
        .await
        .unwrap();
    let status = memory
        .recall(pb::RecallRequest {
            page_size: 2,
            r#type: "odd".into(),
            page_token: first.next_page_token,
            ..recall_in("work")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn forget_deletes_one_memory() {
    let (_pair, memory) = setup().await;
    let keep = memory
        .remember("work", "note", json!({"keep": true}))
        .await
        .unwrap();
    let drop = memory
        .remember("work", "note", json!({"keep": false}))
        .await
        .unwrap();
    memory.forget(drop.id).await.unwrap();
    let left: Vec<i64> = memory
        .recall_context("work")
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, [keep.id]);
    let again = memory.forget(drop.id).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    assert_eq!(
        memory.forget(i64::MAX).await.unwrap_err().code(),
        Code::NotFound
    );
    for bad in [0, -1] {
        assert_eq!(
            memory.forget(bad).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}

#[tokio::test]
async fn deleting_a_context_deletes_its_memories() {
    let (_pair, memory) = setup().await;
    memory.create_context("keep", "").await.unwrap();
    let gone = memory
        .remember("work", "note", json!({"x": 1}))
        .await
        .unwrap();
    memory
        .remember("work", "note", json!({"x": 2}))
        .await
        .unwrap();
    let kept = memory
        .remember("keep", "note", json!({"x": 3}))
        .await
        .unwrap();
    assert_eq!(memory.delete_context("work").await.unwrap(), 2);
    assert_eq!(
        memory.forget(gone.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let everywhere = memory
        .recall_all(pb::RecallRequest {
            all_contexts: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        everywhere.iter().map(|m| m.id).collect::<Vec<_>>(),
        [kept.id]
    );
}
