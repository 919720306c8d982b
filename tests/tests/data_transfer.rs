//! Your data, your way, end to end against the real services and database:
//! idempotent Remember (racing retries, ids scoped per user), RememberMany
//! (all or none, limits), ExportMemories (one snapshot, only the caller's)
//! and ImportMemories (original times, idempotent, byte for byte), each
//! also checked for isolation between users.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::memory_v1::{self as pb, export_memories_response::Item};
use ninaivalaigal_tests::{
    PairSettings, TestPair, TestUser, bearer,
    cluster::Role,
    memory::{MemoryAs, remember, remember_request, to_struct},
    spawn_pair, spawn_pair_with,
};
use prost_types::Timestamp;
use serde_json::json;
use tonic::{Code, Status};

const REQUEST_ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    text: String,
}

/// Every memory row of the database as `owner|context|type|data|time|request id`,
/// read as the owner with row security lifted inside a transaction that is
/// rolled back (the owner sees nothing otherwise).
async fn memory_rows(pair: &TestPair) -> Vec<String> {
    let mut conn = pair.db.connect(Role::Owner).await;
    conn.begin_test_transaction().await.unwrap();
    conn.batch_execute(
        "ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
         ALTER TABLE recording_contexts NO FORCE ROW LEVEL SECURITY;",
    )
    .await
    .unwrap();
    let rows: Vec<TextRow> = diesel::sql_query(
        "SELECT concat_ws('|', m.owner_id, c.name, m.memory_type, m.data::text,
                          to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),
                          coalesce(m.request_id::text, '-')) AS text
           FROM memories m JOIN recording_contexts c
             ON c.owner_id = m.owner_id AND c.id = m.context_id
          ORDER BY m.owner_id, m.created_at, m.id",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|row| row.text).collect()
}

#[tokio::test]
async fn racing_retries_store_one_memory_and_ids_are_scoped_per_user() {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    for user in [&alice, &bob] {
        pair.memory_as(user)
            .await
            .create_context("p", "")
            .await
            .unwrap();
    }
    // Eight retries of one write, all in flight at once.
    let request = remember_request("p", json!({"message": "deploy with make"}), REQUEST_ID);
    let client = pair.memory_client().await;
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            let request = bearer(request.clone(), &alice.access_token);
            tokio::spawn(async move { client.remember(request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for retry in retries {
        answers.push(retry.await.unwrap().unwrap().into_inner());
    }
    let first = answers[0].memory.clone().unwrap();
    assert!(
        answers
            .iter()
            .all(|a| a.memory.as_ref().unwrap().id == first.id)
    );
    assert_eq!(answers.iter().filter(|a| !a.already_stored).count(), 1);
    assert_eq!(first.request_id, REQUEST_ID);
    // Bob's write with the same id is his own memory, not a replay of Alice's.
    let bobs = remember(&pair, &bob, request.clone()).await.unwrap();
    assert!(!bobs.already_stored);
    assert_ne!(bobs.memory.unwrap().id, first.id);
    let rows = memory_rows(&pair).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows[0].starts_with(&format!("{}|", alice.id)), "{rows:#?}");
    assert!(rows[1].starts_with(&format!("{}|", bob.id)), "{rows:#?}");

    // The same id with another memory is refused, saying so.
    let other = remember_request("p", json!({"message": "deploy by hand"}), REQUEST_ID);
    let refused = remember(&pair, &alice, other).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    assert!(refused.message().contains("request_id"), "{refused:?}");
    assert!(refused.message().contains("its data"), "{refused:?}");
    // A retry to "the recording context" finds the memory wherever it went.
    let unnamed = remember_request("", json!({"message": "deploy with make"}), REQUEST_ID);
    let replay = remember(&pair, &alice, unnamed).await.unwrap();
    assert!(replay.already_stored);
    assert_eq!(replay.memory.unwrap().id, first.id);
    // Not a UUID: INVALID_ARGUMENT naming the field.
    let bad = remember_request("p", json!({}), "' OR 1=1 --");
    let status = remember(&pair, &alice, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("request_id"), "{status:?}");
    assert_eq!(memory_rows(&pair).await.len(), 2);
}

async fn remember_many(
    pair: &TestPair,
    user: &TestUser,
    memories: Vec<pb::RememberRequest>,
) -> Result<pb::RememberManyResponse, Status> {
    Ok(pair
        .memory_client()
        .await
        .remember_many(bearer(
            pb::RememberManyRequest { memories },
            &user.access_token,
        ))
        .await?
        .into_inner())
}

#[tokio::test]
async fn a_batch_is_stored_whole_or_not_at_all_within_its_limits_and_quotas() {
    let pair = spawn_pair_with(PairSettings::default().memory(|s| {
        s.max_batch_memories = 3;
        s.max_memories_per_user = 4;
    }))
    .await;
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    pair.memory_as(&alice)
        .await
        .create_context("p", "")
        .await
        .unwrap();
    pair.memory_as(&bob)
        .await
        .create_context("p", "")
        .await
        .unwrap();

    let stored = remember_many(
        &pair,
        &alice,
        vec![
            remember_request("p", json!({"n": 1}), ""),
            remember_request("p", json!({"n": 2}), REQUEST_ID),
        ],
    )
    .await
    .unwrap();
    assert_eq!(stored.memories.len(), 2);
    assert!(
        stored
            .memories
            .iter()
            .all(|m| !m.already_stored && m.context == "p")
    );

    // The second memory names a context Alice does not have (Bob's
    // "q" does not count): nothing of the batch is stored.
    pair.memory_as(&bob)
        .await
        .create_context("q", "")
        .await
        .unwrap();
    let refused = remember_many(
        &pair,
        &alice,
        vec![
            remember_request("p", json!({"n": 3}), ""),
            remember_request("q", json!({"n": 4}), ""),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert!(
        refused.message().starts_with("memories[1]: "),
        "{refused:?}"
    );
    assert_eq!(memory_rows(&pair).await.len(), 2);

    // Over the batch limit, and empty: INVALID_ARGUMENT naming it.
    let many = vec![remember_request("p", json!({}), ""); 4];
    let status = remember_many(&pair, &alice, many).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("NINAIVALAIGAL_MAX_BATCH_MEMORIES"),
        "{status:?}"
    );
    let status = remember_many(&pair, &alice, vec![]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Three more would pass Alice's quota of 4: none is stored. A retry of
    // a stored one inside the batch is no new memory, so two fit.
    let status = remember_many(
        &pair,
        &alice,
        vec![
            remember_request("p", json!({"n": 5}), ""),
            remember_request("p", json!({"n": 6}), ""),
            remember_request("p", json!({"n": 7}), ""),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("NINAIVALAIGAL_MAX_MEMORIES_PER_USER"),
        "{status:?}"
    );
    let fits = remember_many(
        &pair,
        &alice,
        vec![
            remember_request("p", json!({"n": 2}), REQUEST_ID),
            remember_request("p", json!({"n": 5}), ""),
            remember_request("p", json!({"n": 6}), ""),
        ],
    )
    .await
    .unwrap();
    assert!(fits.memories[0].already_stored);
    assert_eq!(memory_rows(&pair).await.len(), 4);
    // Bob's quota is his own.
    remember_many(
        &pair,
        &bob,
        vec![remember_request("p", json!({}), REQUEST_ID)],
    )
    .await
    .unwrap();
}

/// Every item of an export, in order.
async fn export(pair: &TestPair, user: &TestUser, context: &str) -> Result<Vec<Item>, Status> {
    let request = pb::ExportMemoriesRequest {
        context: context.into(),
    };
    let mut stream = pair
        .memory_client()
        .await
        .export_memories(bearer(request, &user.access_token))
        .await?
        .into_inner();
    let mut items = Vec::new();
    while let Some(message) = stream.message().await? {
        items.push(message.item.unwrap());
    }
    Ok(items)
}

/// The export as import batches: each context, then its memories, with
/// the request ids `eM import` would send (the memory's own, or one made
/// from its id).
fn as_import(items: &[Item]) -> pb::ImportMemoriesRequest {
    let mut request = pb::ImportMemoriesRequest::default();
    for item in items {
        match item {
            Item::Context(context) => request.contexts.push(pb::ImportedContext {
                name: context.name.clone(),
                description: context.description.clone(),
                create_time: context.create_time,
            }),
            Item::Memory(memory) => request.memories.push(pb::ImportedMemory {
                context: memory.context.clone(),
                r#type: memory.r#type.clone(),
                data: memory.data.clone(),
                create_time: memory.create_time,
                request_id: if memory.request_id.is_empty() {
                    uuid::Uuid::from_u64_pair(0, memory.id as u64).to_string()
                } else {
                    memory.request_id.clone()
                },
            }),
        }
    }
    request
}

async fn import(
    pair: &TestPair,
    user: &TestUser,
    request: pb::ImportMemoriesRequest,
) -> Result<pb::ImportMemoriesResponse, Status> {
    Ok(pair
        .memory_client()
        .await
        .import_memories(bearer(request, &user.access_token))
        .await?
        .into_inner())
}

async fn fill(memory: &MemoryAs) {
    memory.create_context("work", "the web shop").await.unwrap();
    memory.create_context("home", "").await.unwrap();
    // Data JSON can hold whatever way: numbers at the edges, Unicode,
    // escapes, deep nesting, an empty object.
    let records = [
        json!({"message": "deploy with `make release`", "n": 0.1, "big": 1.7976931348623157e308}),
        json!({"text": "ünï\u{202e}cödé\n\"quoted\"\t\\", "neg": -0.0, "list": [1, [2, [3, {}]]]}),
        json!({}),
    ];
    for (i, record) in records.iter().enumerate() {
        memory
            .remember("work", "note", record.clone())
            .await
            .unwrap();
        memory
            .remember("home", &format!("kind-{i}"), json!({"i": i}))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_account_gives_the_same_memories_byte_for_byte() {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let bob = pair.register_user("bob@example.test").await;
    let carol = pair.register_user("carol@example.test").await;
    fill(&pair.memory_as(&alice).await).await;
    // Bob has data too, and a context of the same name as Alice's.
    let bobs = pair.memory_as(&bob).await;
    bobs.create_context("work", "bob's").await.unwrap();
    bobs.remember("work", "secret", json!({"bob": "only"}))
        .await
        .unwrap();

    let items = export(&pair, &alice, "").await.unwrap();
    let contexts: Vec<&pb::Context> = items
        .iter()
        .filter_map(|item| match item {
            Item::Context(context) => Some(context),
            Item::Memory(_) => None,
        })
        .collect();
    assert_eq!(
        contexts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["home", "work"]
    );
    assert_eq!(contexts[1].description, "the web shop");
    assert_eq!(items.len(), 2 + 6);
    let all_text = format!("{items:?}");
    assert!(
        !all_text.contains("bob"),
        "Bob's data in Alice's export: {all_text}"
    );
    // One context only; another user's context is NOT_FOUND.
    assert_eq!(export(&pair, &alice, "home").await.unwrap().len(), 4);
    let status = export(&pair, &carol, "work").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(export(&pair, &carol, "").await.unwrap().is_empty());

    // Into Carol's fresh account; then again, which changes nothing.
    let request = as_import(&items);
    let first = import(&pair, &carol, request.clone()).await.unwrap();
    assert_eq!((first.contexts_created, first.memories_created), (2, 6));
    assert_eq!((first.contexts_skipped, first.memories_skipped), (0, 0));
    let again = import(&pair, &carol, request.clone()).await.unwrap();
    assert_eq!((again.contexts_created, again.memories_created), (0, 0));
    assert_eq!((again.contexts_skipped, again.memories_skipped), (2, 6));

    // Same context, type, data text and time, byte for byte; Bob untouched.
    let rows = memory_rows(&pair).await;
    let of = |user: &TestUser| -> Vec<String> {
        rows.iter()
            .filter_map(|row| row.strip_prefix(&format!("{}|", user.id)))
            // Drop the request id: Carol's memories carry the import's.
            .map(|row| row.rsplit_once('|').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(of(&alice).len(), 6);
    assert_eq!(of(&alice), of(&carol));
    assert_eq!(of(&bob).len(), 1);
    // The export of the copy is the export of the original, ids and request
    // ids aside.
    let strip = |items: Vec<Item>| -> Vec<String> {
        items
            .into_iter()
            .map(|item| match item {
                Item::Context(c) => format!(
                    "{}|{}|{:?}|{}",
                    c.name, c.description, c.create_time, c.memory_count
                ),
                Item::Memory(m) => format!(
                    "{}|{}|{:?}|{:?}",
                    m.context, m.r#type, m.data, m.create_time
                ),
            })
            .collect()
    };
    assert_eq!(
        strip(export(&pair, &carol, "").await.unwrap()),
        strip(export(&pair, &alice, "").await.unwrap())
    );

    // Importing into a name Bob also has writes to the importer's own.
    let into_work = pb::ImportMemoriesRequest {
        contexts: vec![],
        memories: vec![pb::ImportedMemory {
            context: "work".into(),
            r#type: "note".into(),
            data: Some(to_struct(json!({"carol": 1}))),
            create_time: Some(Timestamp {
                seconds: 1_600_000_000,
                nanos: 0,
            }),
            request_id: REQUEST_ID.into(),
        }],
    };
    import(&pair, &carol, into_work).await.unwrap();
    assert_eq!(bobs.recall_context("work").await.unwrap().len(), 1);
}

#[tokio::test]
async fn imports_name_the_bad_item_and_store_nothing_of_its_batch() {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let memory = |request_id: &str, seconds: i64| pb::ImportedMemory {
        context: "p".into(),
        r#type: "note".into(),
        data: Some(to_struct(json!({"x": 1}))),
        create_time: Some(Timestamp { seconds, nanos: 0 }),
        request_id: request_id.into(),
    };
    let context = pb::ImportedContext {
        name: "p".into(),
        description: String::new(),
        create_time: None,
    };
    let future = chrono::Utc::now().timestamp() + 86_400;
    for (bad, field) in [
        (memory("", 1_600_000_000), "request_id"),
        (memory(REQUEST_ID, future), "create_time"),
    ] {
        let request = pb::ImportMemoriesRequest {
            contexts: vec![context.clone()],
            memories: vec![
                memory("67e55044-10b1-426f-9247-bb680e5fe0c9", 1_600_000_000),
                bad,
            ],
        };
        let status = import(&pair, &alice, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status
                .message()
                .starts_with(&format!("memories[1]: {field}")),
            "{status:?}"
        );
    }
    assert!(
        pair.memory_as(&alice)
            .await
            .context_names()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(memory_rows(&pair).await.is_empty());
}
