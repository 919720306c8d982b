//! Recall's text queries through the term index, `memory_terms`.
//!
//! Under row-level security PostgreSQL applies a table's policy before any
//! qual that is not leakproof, and `@@` is not: the GIN index on
//! `memories.search` is never used, and a text query filtered on memories
//! alone reads the caller's memories newest first until a page matches (all
//! of them, for a rare word). `memory_terms` holds one row per distinct
//! lexeme of each memory (a trigger keeps it, see the migration
//! `2026-12-04-000001_memory_terms`), keyed by `(owner_id, term, created_at,
//! memory_id)`; `term = $1` is leakproof, so that key is an index PostgreSQL
//! does use under the same policy.
//!
//! A page is then planned in two statements. The first asks PostgreSQL which
//! lexemes of the query every match must contain, and how many postings each
//! has (counted up to [`POSTINGS_COUNTED`]). The second walks the postings of
//! the rarest such lexeme newest first (or, when the query requires none,
//! as in `a or b`, the few postings of all its lexemes), joins each to its
//! memory and keeps `memories.search @@ websearch_to_tsquery(...)` and every
//! other filter of Recall on the memory as the exact test. The postings are
//! only a way to reach candidates, so the page is the one the filter on
//! memories alone selects, in the same order.
//!
//! Both statements also name the caller (`owner_id =` the verified token's
//! user id) beside the row-level security policy, which still decides what
//! each row is. The name is for Citus: it runs a correlated subquery next
//! to CTEs or subqueries only in a statement it routes whole to one shard,
//! and it routes only on the owner it can see in the statement.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;

use super::Conn;

use super::memories::Planned;
use crate::{
    error::Result,
    paging::Position,
    recall::{RecallQuery, TextQuery},
};

/// Postings counted per lexeme to tell rare from common: a lexeme with
/// fewer is walked whole at worst; past it, every lexeme is "common".
pub const POSTINGS_COUNTED: i64 = 1000;

/// How a text query reaches its candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The query holds no lexeme at all (only stop words): PostgreSQL's
    /// `@@` is false for every memory, so no page has any.
    Nothing,
    /// Every match contains this lexeme: walk its postings, newest first.
    Term(String),
    /// Every match contains one of these lexemes, which have few postings
    /// between them: read them all, then sort.
    AnyOf(Vec<String>),
    /// Nothing to drive from (the query only excludes, as `-word` does, or
    /// its alternatives are common): scan the memories as without the index.
    Scan,
}

/// One positive lexeme of a query, as PostgreSQL sees it.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct Lexeme {
    /// The lexeme; `None` in the one row of a query without any.
    #[diesel(sql_type = Nullable<Text>)]
    pub term: Option<String>,
    /// Whether every memory the query matches contains it.
    #[diesel(sql_type = Bool)]
    pub required: bool,
    /// Postings of the caller with it that the page could use, counted up to
    /// [`POSTINGS_COUNTED`].
    #[diesel(sql_type = BigInt)]
    pub postings: i64,
    /// Whether the lexemes found make up the whole query (a check on their
    /// extraction: if not, the query is scanned).
    #[diesel(sql_type = Bool)]
    pub complete: bool,
    /// Nodes of the query's tree; 0 when it holds no lexeme at all.
    #[diesel(sql_type = Integer)]
    pub nodes: i32,
}

/// The positive lexemes of a text query, whether each is required, and its
/// postings within the page's context, time range and cursor.
///
/// `querytree` drops the negated parts of the query, leaving a query that
/// only grows with what a memory contains and that every match of the whole
/// query also matches. Its text quotes each lexeme (`''` and `\\` escaped).
/// A lexeme is required when a memory holding every other lexeme of that
/// query, at every position 1 to 256 (so phrases are satisfied), still does
/// not match it: then no memory without the lexeme matches.
const ANALYSIS: &str = r#"
WITH query AS (
    SELECT websearch_to_tsquery('english'::regconfig, $1) AS full_query
), tree AS (
    SELECT numnode(full_query) AS nodes, querytree(full_query) AS tree_text FROM query
), lexemes AS (
    SELECT DISTINCT regexp_replace(m[1], $$''|\\(.)$$, $$'\1$$, 'g') AS term
      FROM tree, regexp_matches(tree.tree_text, $$'((?:[^'\\]|''|\\.)*)'$$, 'g') AS m
), everything AS (
    SELECT string_agg(format($$'%s':%s$$, regexp_replace(term, $$(['\\])$$, '\1\1', 'g'),
                             (SELECT string_agg(p::text, ',') FROM generate_series(1, 256) p)),
                      ' ')::tsvector AS doc
      FROM lexemes
)
SELECT l.term,
       coalesce(NOT (ts_delete(e.doc, l.term) @@ t.tree_text::tsquery), false) AS required,
       coalesce((SELECT count(*) FROM (
                    SELECT FROM memory_terms p
                     WHERE p.owner_id = $8 AND p.term = l.term
                       AND ($2::bigint IS NULL OR p.context_id = $2)
                       AND ($3::timestamptz IS NULL OR p.created_at >= $3)
                       AND ($4::timestamptz IS NULL OR p.created_at < $4)
                       AND ($5::timestamptz IS NULL OR (p.created_at, p.memory_id) < ($5, $6))
                     LIMIT $7) counted), 0) AS postings,
       coalesce(e.doc @@ t.tree_text::tsquery, false) AS complete,
       t.nodes
  FROM tree t
  LEFT JOIN lexemes l ON true
  LEFT JOIN everything e ON l.term IS NOT NULL
"#;

/// Asks PostgreSQL for the lexemes of `text` (see [`ANALYSIS`]).
pub async fn lexemes(
    conn: &mut Conn<'_>,
    owner_id: i64,
    text: &TextQuery,
    context_id: Option<i64>,
    time: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    after: Option<Position>,
) -> Result<Vec<Lexeme>> {
    Ok(diesel::sql_query(ANALYSIS)
        .bind::<Text, _>(text.as_str())
        .bind::<Nullable<BigInt>, _>(context_id)
        .bind::<Nullable<Timestamptz>, _>(time.0)
        .bind::<Nullable<Timestamptz>, _>(time.1)
        .bind::<Nullable<Timestamptz>, _>(after.map(|after| after.created_at))
        .bind::<Nullable<BigInt>, _>(after.map(|after| after.id))
        .bind::<BigInt, _>(POSTINGS_COUNTED)
        .bind::<BigInt, _>(owner_id)
        .load(conn)
        .await?)
}

/// The route for a query with these lexemes.
pub fn route(lexemes: &[Lexeme]) -> Route {
    if lexemes.iter().all(|lexeme| lexeme.nodes == 0) {
        return Route::Nothing;
    }
    let known: Vec<&Lexeme> = lexemes
        .iter()
        .filter(|lexeme| lexeme.term.is_some())
        .collect();
    if known.is_empty() || !known.iter().all(|lexeme| lexeme.complete) {
        return Route::Scan;
    }
    // The rarest required lexeme (ties: the first alphabetically, so the
    // route does not depend on the order rows came in).
    let rarest = known
        .iter()
        .filter(|lexeme| lexeme.required)
        .min_by(|a, b| a.postings.cmp(&b.postings).then(a.term.cmp(&b.term)));
    if let Some(Lexeme {
        term: Some(term), ..
    }) = rarest
    {
        return Route::Term(term.clone());
    }
    let total: i64 = known.iter().map(|lexeme| lexeme.postings).sum();
    if total < POSTINGS_COUNTED {
        let mut terms: Vec<String> = known.iter().filter_map(|l| l.term.clone()).collect();
        terms.sort();
        return Route::AnyOf(terms);
    }
    Route::Scan
}

/// Recall's page through postings (`{postings}`, see [`walk_term`] and
/// [`walk_any`]): each posting, newest first, reaches its memory, which
/// passes only if Recall's filters on memories alone pass it (exact even if
/// a posting disagreed with its memory); the filters that the postings hold
/// narrow them first, and say where the index starts (the cursor, as a row
/// comparison) and ends (the time range). The memory is looked up in a
/// LATERAL subquery that cannot be pulled up (`OFFSET 0`), so PostgreSQL
/// always walks the postings in order and stops at the page's end: it
/// cannot estimate `@@` under row-level security, and for a common lexeme
/// it would otherwise hash every posting and every memory. Parameters given
/// as NULL drop their filter (each statement is planned with its values,
/// diesel never prepares a raw query for reuse, so they fold away).
const WALK: &str = r#"
SELECT m.created_at, m.id, m.context_id, m.data_bytes
  FROM {postings}
 CROSS JOIN LATERAL (
    SELECT m.created_at, m.id, m.context_id, m.data_bytes FROM memories m
     WHERE m.owner_id = $10 AND m.owner_id = t.owner_id
       AND m.id = t.memory_id AND m.created_at = t.created_at
       AND ($2::bigint IS NULL OR m.context_id = $2)
       AND ($3::text IS NULL OR m.memory_type = $3)
       AND ($4::timestamptz IS NULL OR m.created_at >= $4)
       AND ($5::timestamptz IS NULL OR m.created_at < $5)
       AND ($6::timestamptz IS NULL OR m.created_at < $6 OR (m.created_at = $6 AND m.id < $7))
       AND m.search @@ websearch_to_tsquery('english'::regconfig, $8)
    OFFSET 0) m
 WHERE ($2::bigint IS NULL OR t.context_id = $2)
   AND ($4::timestamptz IS NULL OR t.created_at >= $4)
   AND ($5::timestamptz IS NULL OR t.created_at < $5)
   AND ($6::timestamptz IS NULL OR (t.created_at, t.memory_id) < ($6, $7))
 ORDER BY t.created_at DESC, t.memory_id DESC
 LIMIT $9
"#;

/// The postings of [`Route::Term`]: one lexeme's, in the index's order.
const TERM_POSTINGS: &str = "(SELECT * FROM memory_terms WHERE owner_id = $10 AND term = $1) t";

/// The postings of [`Route::AnyOf`]: any of the lexemes `$1`, one per
/// memory (they are few: sorted, not walked).
const ANY_POSTINGS: &str = "(SELECT DISTINCT owner_id, created_at, memory_id, context_id
          FROM memory_terms WHERE owner_id = $10 AND term = ANY($1)) t";

/// [`WALK`] through the postings of the lexeme `$1`.
pub fn walk_term() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| WALK.replace("{postings}", TERM_POSTINGS));
    &SQL
}

/// [`WALK`] through the postings of any of the lexemes `$1`.
pub fn walk_any() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| WALK.replace("{postings}", ANY_POSTINGS));
    &SQL
}

/// A planned memory: created_at, id, context_id, data_bytes.
#[derive(QueryableByName)]
struct PlannedRow {
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    context_id: i64,
    #[diesel(sql_type = Integer)]
    data_bytes: i32,
}

/// The candidates of one page of a text query, as [`super::memories::plan`]
/// plans them (newest first), reached through the term index, in the
/// context `context_id` (every context if `None`); `None` when the query is
/// best scanned (see [`Route::Scan`]).
pub async fn plan(
    conn: &mut Conn<'_>,
    owner_id: i64,
    query: &RecallQuery,
    text: &TextQuery,
    context_id: Option<i64>,
    after: Option<Position>,
) -> Result<Option<Vec<Planned>>> {
    let time = (query.time.start(), query.time.end());
    let lexemes = lexemes(conn, owner_id, text, context_id, time, after).await?;
    let select = match route(&lexemes) {
        Route::Nothing => return Ok(Some(Vec::new())),
        Route::Scan => return Ok(None),
        Route::Term(term) => diesel::sql_query(walk_term())
            .into_boxed()
            .bind::<Text, _>(term),
        Route::AnyOf(terms) => diesel::sql_query(walk_any())
            .into_boxed()
            .bind::<Array<Text>, _>(terms),
    };
    let rows: Vec<PlannedRow> = select
        .bind::<Nullable<BigInt>, _>(context_id)
        .bind::<Nullable<Text>, _>(query.memory_type.as_ref().map(|t| t.as_str().to_owned()))
        .bind::<Nullable<Timestamptz>, _>(time.0)
        .bind::<Nullable<Timestamptz>, _>(time.1)
        .bind::<Nullable<Timestamptz>, _>(after.map(|after| after.created_at))
        .bind::<Nullable<BigInt>, _>(after.map(|after| after.id))
        .bind::<Text, _>(text.as_str().to_owned())
        .bind::<BigInt, _>(query.page_size.fetch_limit())
        .bind::<BigInt, _>(owner_id)
        .load(conn)
        .await?;
    Ok(Some(
        rows.into_iter()
            .map(|row| Planned {
                position: Position {
                    created_at: row.created_at,
                    id: row.id,
                },
                context_id: row.context_id,
                // A generated octet_length: never negative.
                data_bytes: usize::try_from(row.data_bytes).unwrap_or(0),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexeme(term: &str, required: bool, postings: i64) -> Lexeme {
        Lexeme {
            term: Some(term.to_owned()),
            required,
            postings,
            complete: true,
            nodes: 3,
        }
    }

    #[test]
    fn the_rarest_required_lexeme_drives() {
        let both = [lexeme("deploy", true, 1000), lexeme("ticket7", true, 3)];
        assert_eq!(route(&both), Route::Term("ticket7".into()));
        let ties = [lexeme("b", true, 1000), lexeme("a", true, 1000)];
        assert_eq!(route(&ties), Route::Term("a".into()));
        // Only required ones: `a & (b | c)`.
        let mixed = [
            lexeme("a", true, 900),
            lexeme("b", false, 1),
            lexeme("c", false, 1),
        ];
        assert_eq!(route(&mixed), Route::Term("a".into()));
    }

    #[test]
    fn alternatives_are_read_together_only_when_few() {
        let rare = [lexeme("cat", false, 10), lexeme("dog", false, 20)];
        assert_eq!(route(&rare), Route::AnyOf(vec!["cat".into(), "dog".into()]));
        let common = [lexeme("cat", false, 10), lexeme("dog", false, 1000)];
        assert_eq!(route(&common), Route::Scan);
    }

    #[test]
    fn queries_without_lexemes_scan_or_match_nothing() {
        let negated = Lexeme {
            term: None,
            required: false,
            postings: 0,
            complete: false,
            nodes: 2,
        };
        assert_eq!(route(std::slice::from_ref(&negated)), Route::Scan);
        let stop_words = Lexeme {
            nodes: 0,
            ..negated
        };
        assert_eq!(route(&[stop_words]), Route::Nothing);
        let incomplete = Lexeme {
            complete: false,
            ..lexeme("a", true, 1)
        };
        assert_eq!(route(&[incomplete]), Route::Scan);
    }
}
