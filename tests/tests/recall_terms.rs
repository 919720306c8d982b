//! Recall's text queries through the term index (`memory_terms`): the pages
//! are exactly those of the plain `search @@ websearch_to_tsquery(...)`
//! filter for many kinds of query, filter and page size; the index is kept
//! to its owner by row-level security; it follows memories out; and under
//! row-level security PostgreSQL walks it rather than the memories.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use memory_service::db::terms::{POSTINGS_COUNTED, walk_term};
use ninaivalaigal::memory_v1 as pb;
use ninaivalaigal_tests::{
    TestPair, TestUser, bearer, cluster::Role, db::set_rls_user, spawn_pair,
};
use prost_types::Timestamp;
use serde_json::json;

#[derive(Debug, QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Midnight of 2026-01-01, where the seeded memories start (three a second).
const EPOCH: i64 = 1_767_225_600;

/// Words of the seeded texts; the first are in most memories, the last in
/// few, and each text also holds one of 97 rare words `rareN`.
const WORDS: &str = "{alpha,bravo,charlie,delta,echo,foxtrot,golf,hotel,india,juliet,kilo,lima}";

/// Gives `user` `count` memories in the contexts `first` (two in three) and
/// `second`, straight in SQL as the memory role (as Remember stores them,
/// with the triggers), three per second from [`EPOCH`] on, so that pages
/// end between memories of the same time.
async fn seed(conn: &mut AsyncPgConnection, user: i64, first: i64, second: i64, count: i64) {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user).await?;
        diesel::sql_query(
            "INSERT INTO memories (owner_id, context_id, memory_type, data, created_at)
             SELECT $1, CASE WHEN g % 3 = 0 THEN $3 ELSE $2 END,
                    (ARRAY['note', 'decision', 'error', 'todo', 'idea'])[1 + g % 5],
                    json_build_object(
                        'text', (SELECT string_agg(w[1 + floor(12 * ((abs(hashtext(g || ':' || k)) % 1000) / 1000.0) ^ 2)::int], ' ')
                                   FROM generate_series(1, 3 + g % 5) k),
                        'ref', 'rare' || (g % 97)),
                    to_timestamp($5) + (g / 3) * interval '1 second'
               FROM generate_series(1, $4) g, CAST($6 AS text[]) w",
        )
        .bind::<BigInt, _>(user)
        .bind::<BigInt, _>(first)
        .bind::<BigInt, _>(second)
        .bind::<BigInt, _>(count)
        .bind::<BigInt, _>(EPOCH)
        .bind::<Text, _>(WORDS)
        .execute(conn)
        .await?;
        Ok(())
    })
    .await
    .unwrap();
}

async fn context_id(conn: &mut AsyncPgConnection, user: i64, name: &str) -> i64 {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user).await?;
        let row: Id = diesel::sql_query("SELECT id FROM recording_contexts WHERE name = $1")
            .bind::<Text, _>(name)
            .get_result(conn)
            .await?;
        Ok(row.id)
    })
    .await
    .unwrap()
}

/// A user with contexts "one" and "two" holding `count` seeded memories.
async fn seeded_user(pair: &TestPair, email: &str, count: i64) -> (TestUser, i64, i64) {
    let user = pair.register_user(email).await;
    let memory = pair.memory_as(&user).await;
    memory.create_context("one", "").await.unwrap();
    memory.create_context("two", "").await.unwrap();
    let mut conn = pair.db.connect(Role::Memory).await;
    let one = context_id(&mut conn, user.id, "one").await;
    let two = context_id(&mut conn, user.id, "two").await;
    seed(&mut conn, user.id, one, two, count).await;
    (user, one, two)
}

/// The filters of one comparison.
#[derive(Clone, Debug, Default)]
struct Filters {
    context: Option<(&'static str, i64)>,
    memory_type: Option<&'static str>,
    /// Seconds after [`EPOCH`].
    start: Option<i64>,
    end: Option<i64>,
}

/// What the plain filter on memories selects, newest first.
async fn expected(
    conn: &mut AsyncPgConnection,
    user: i64,
    text: &str,
    filters: &Filters,
) -> Vec<i64> {
    let at = |seconds: Option<i64>| {
        seconds.map(|s| DateTime::<Utc>::from_timestamp(EPOCH + s, 0).unwrap())
    };
    let filters = filters.clone();
    let text = text.to_owned();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, user).await?;
        let rows: Vec<Id> = diesel::sql_query(
            "SELECT id FROM memories
              WHERE search @@ websearch_to_tsquery('english'::regconfig, $1)
                AND ($2::bigint IS NULL OR context_id = $2)
                AND ($3::text IS NULL OR memory_type = $3)
                AND ($4::timestamptz IS NULL OR created_at >= $4)
                AND ($5::timestamptz IS NULL OR created_at < $5)
              ORDER BY created_at DESC, id DESC",
        )
        .bind::<Text, _>(text)
        .bind::<Nullable<BigInt>, _>(filters.context.map(|(_, id)| id))
        .bind::<Nullable<Text>, _>(filters.memory_type)
        .bind::<Nullable<Timestamptz>, _>(at(filters.start))
        .bind::<Nullable<Timestamptz>, _>(at(filters.end))
        .load(conn)
        .await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    })
    .await
    .unwrap()
}

fn request(text: &str, filters: &Filters, page_size: i32) -> pb::RecallRequest {
    let at = |seconds: Option<i64>| {
        seconds.map(|s| Timestamp {
            seconds: EPOCH + s,
            nanos: 0,
        })
    };
    pb::RecallRequest {
        context: filters
            .context
            .map_or(String::new(), |(name, _)| name.to_owned()),
        all_contexts: filters.context.is_none(),
        r#type: filters.memory_type.unwrap_or_default().to_owned(),
        start_time: at(filters.start),
        end_time: at(filters.end),
        query: text.to_owned(),
        page_size,
        ..Default::default()
    }
}

#[tokio::test]
async fn text_recall_returns_exactly_what_the_plain_filter_selects() {
    let pair = spawn_pair().await;
    // More memories than POSTINGS_COUNTED hold the commonest words, so
    // common and rare words, and alternatives of each, take every route.
    let count = 1500;
    let (alice, one, _) = seeded_user(&pair, "alice@example.test", count).await;
    let (bob, ..) = seeded_user(&pair, "bob@example.test", 300).await;
    let memory = pair.memory_as(&alice).await;
    let mut conn = pair.db.connect(Role::Memory).await;
    let common: Count = {
        let mut c = pair.db.connect(Role::Memory).await;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            set_rls_user(c, alice.id).await?;
            diesel::sql_query("SELECT count(*) AS n FROM memory_terms WHERE term = 'alpha'")
                .get_result(c)
                .await
        })
        .await
        .unwrap()
    };
    assert!(common.n > POSTINGS_COUNTED, "alpha is common: {common:?}");

    let queries = [
        "alpha",
        "lima",
        "rare5",
        "alpha bravo",
        "alpha rare5",
        "lima rare7 kilo",
        "alpha or lima",
        "rare5 or rare7",
        "rare5 or lima",
        "\"alpha bravo\"",
        "\"bravo alpha\" -charlie",
        "alpha -bravo",
        "-alpha",
        "rare5 or -alpha",
        "nomatchword",
        "alpha nomatchword",
        "the",
        "decision alpha",
        "o'reilly's alpha",
        "\"kilo lima\" or rare11",
    ];
    let filter_sets = [
        Filters::default(),
        Filters {
            context: Some(("one", one)),
            ..Default::default()
        },
        Filters {
            memory_type: Some("decision"),
            start: Some(100),
            end: Some(300),
            ..Default::default()
        },
    ];
    for text in queries {
        for filters in &filter_sets {
            let want = expected(&mut conn, alice.id, text, filters).await;
            for page_size in [50, 1000] {
                let got: Vec<i64> = memory
                    .recall_all(request(text, filters, page_size))
                    .await
                    .unwrap_or_else(|status| panic!("{text:?} {filters:?}: {status:?}"))
                    .into_iter()
                    .map(|m| m.id)
                    .collect();
                assert_eq!(got, want, "{text:?}, {filters:?}, pages of {page_size}");
            }
        }
    }
    // Small pages across memories of the same second.
    for text in ["rare5 or rare7", "lima rare7 kilo", "alpha bravo"] {
        let filters = Filters {
            start: Some(0),
            end: Some(60),
            ..Default::default()
        };
        let want = expected(&mut conn, alice.id, text, &filters).await;
        let got: Vec<i64> = memory
            .recall_all(request(text, &filters, 2))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, want, "{text:?} in pages of 2");
    }
    // Bob's memories hold the same words; none is Alice's to recall.
    let bobs = expected(&mut conn, bob.id, "alpha", &Filters::default()).await;
    let alices = expected(&mut conn, alice.id, "alpha", &Filters::default()).await;
    assert!(!bobs.is_empty());
    assert!(bobs.iter().all(|id| !alices.contains(id)));
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

#[tokio::test]
async fn the_term_index_shows_each_user_only_their_own_postings() {
    let pair = spawn_pair().await;
    let (alice, ..) = seeded_user(&pair, "alice@example.test", 20).await;
    let (bob, ..) = seeded_user(&pair, "bob@example.test", 20).await;
    let mut conn = pair.db.connect(Role::Memory).await;
    let (alice_id, bob_id) = (alice.id, bob.id);
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        set_rls_user(conn, alice_id).await?;
        let all = count(conn, "SELECT count(*) AS n FROM memory_terms").await;
        let own = format!("SELECT count(*) AS n FROM memory_terms WHERE owner_id = {alice_id}");
        assert!(all > 20);
        assert_eq!(count(conn, &own).await, all);
        let of_bob = format!("SELECT count(*) AS n FROM memory_terms WHERE owner_id = {bob_id}");
        assert_eq!(count(conn, &of_bob).await, 0);
        Ok(())
    })
    .await
    .unwrap();
    // No user named: nothing at all.
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        assert_eq!(
            count(conn, "SELECT count(*) AS n FROM memory_terms").await,
            0
        );
        Ok(())
    })
    .await
    .unwrap();
    // Alice cannot write postings for Bob: not in his name (row security)...
    let bob_memory = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, bob_id).await?;
            Ok(count(conn, "SELECT min(id) AS n FROM memories").await)
        })
        .await
        .unwrap();
    let forge = async |conn: &mut AsyncPgConnection, owner: i64| {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, alice_id).await?;
            conn.batch_execute(&format!(
                "INSERT INTO memory_terms (owner_id, term, created_at, memory_id, context_id)
                 VALUES ({owner}, 'forged', now(), {bob_memory}, 1)"
            ))
            .await
        })
        .await
        .unwrap_err()
        .to_string()
    };
    let as_bob = forge(&mut conn, bob_id).await;
    assert!(as_bob.contains("row-level security"), "{as_bob}");
    // ...nor in her own name for his memory (the foreign key names the
    // owner with the memory).
    let as_alice = forge(&mut conn, alice_id).await;
    assert!(as_alice.contains("foreign key"), "{as_alice}");
}

#[tokio::test]
async fn postings_go_with_their_memory_context_and_account() {
    let pair = spawn_pair().await;
    let alice = pair.register_user("alice@example.test").await;
    let memory = pair.memory_as(&alice).await;
    memory.create_context("keep", "").await.unwrap();
    memory.create_context("drop", "").await.unwrap();
    let forgotten = memory
        .remember("keep", "note", json!({"text": "forgotten zebra"}))
        .await
        .unwrap();
    memory
        .remember("keep", "note", json!({"text": "kept zebra"}))
        .await
        .unwrap();
    memory
        .remember("drop", "note", json!({"text": "dropped zebra"}))
        .await
        .unwrap();
    let mut conn = pair.db.connect(Role::Memory).await;
    let alice_id = alice.id;
    let postings = async |conn: &mut AsyncPgConnection, sql: &'static str| {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            set_rls_user(conn, alice_id).await?;
            Ok(count(conn, sql).await)
        })
        .await
        .unwrap()
    };
    let zebra = "SELECT count(*) AS n FROM memory_terms WHERE term = 'zebra'";
    assert_eq!(postings(&mut conn, zebra).await, 3);

    memory.forget(forgotten.id).await.unwrap();
    assert_eq!(postings(&mut conn, zebra).await, 2);
    assert_eq!(
        postings(
            &mut conn,
            "SELECT count(*) AS n FROM memory_terms WHERE term = 'forgotten'"
        )
        .await,
        0
    );
    memory.delete_context("drop").await.unwrap();
    assert_eq!(postings(&mut conn, zebra).await, 1);
    assert_eq!(
        postings(
            &mut conn,
            "SELECT count(*) AS n FROM memory_terms WHERE term = 'drop'"
        )
        .await,
        0
    );

    // The account, through the admin's DeleteUser: the cascade takes the
    // rest (account_erasure covers DeleteAccount, over every table).
    let admin = pair.register_admin().await;
    let mut admin_client = pair.admin_client().await;
    admin_client
        .delete_user(bearer(
            ninaivalaigal::auth_v1::DeleteUserRequest {
                email: alice.email.clone(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap();
    assert_eq!(
        postings(&mut conn, "SELECT count(*) AS n FROM memory_terms").await,
        0
    );
}

#[tokio::test]
async fn under_row_level_security_a_text_query_walks_the_term_index() {
    let pair = spawn_pair().await;
    let (alice, ..) = seeded_user(&pair, "alice@example.test", 5000).await;
    seeded_user(&pair, "bob@example.test", 2000).await;
    let mut owner = pair.db.connect(Role::Owner).await;
    owner
        .batch_execute("ANALYZE memories; ANALYZE memory_terms")
        .await
        .unwrap();
    let mut conn = pair.db.connect(Role::Memory).await;
    let alice_id = alice.id;
    for (term, text) in [("rare5", "rare5"), ("alpha", "alpha bravo")] {
        let plan = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                set_rls_user(conn, alice_id).await?;
                let lines: Vec<Line> = diesel::sql_query(format!("EXPLAIN {}", walk_term()))
                    .bind::<Text, _>(term)
                    .bind::<Nullable<BigInt>, _>(None::<i64>)
                    .bind::<Nullable<Text>, _>(None::<String>)
                    .bind::<Nullable<Timestamptz>, _>(None::<DateTime<Utc>>)
                    .bind::<Nullable<Timestamptz>, _>(None::<DateTime<Utc>>)
                    .bind::<Nullable<Timestamptz>, _>(None::<DateTime<Utc>>)
                    .bind::<Nullable<BigInt>, _>(None::<i64>)
                    .bind::<Text, _>(text)
                    .bind::<BigInt, _>(21)
                    .bind::<BigInt, _>(alice_id)
                    .load(conn)
                    .await?;
                Ok(lines
                    .into_iter()
                    .map(|l| l.line)
                    .collect::<Vec<_>>()
                    .join("\n"))
            })
            .await
            .unwrap();
        assert!(
            plan.contains("Index Only Scan Backward using memory_terms_pkey"),
            "{plan}"
        );
        assert!(plan.contains(&format!("term = '{term}'::text")), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        assert!(!plan.contains("Sort"), "{plan}");
    }
}
