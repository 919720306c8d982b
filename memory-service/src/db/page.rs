//! One Recall page: which memories it may hold, and the data of those it
//! takes, in one statement when it can ([`plan_and_load`], which Recall
//! runs as a transaction of one round trip: `db::with_user_statement`).
//!
//! A page is cut twice: to its page size, and to a byte budget (see
//! `budget::ByteBudget`), counting each memory as its JSON plus a fixed
//! overhead, so that a page of large memories never loads more than the
//! response may carry. Without a text query the statement below plans,
//! cuts and loads in one round trip: the window sums the candidates' sizes
//! newest first, and only the taken ones carry their data (a TOASTed
//! value is read only where it is returned). A text query plans through
//! the term index (`db::terms`) first and then loads what it takes.
//!
//! The statement's candidates are those of `memories::plan` (the same
//! filters, order and limit), with their data. For a page in one context
//! (named, or the recording one) PostgreSQL receives, around them (for a
//! named context, exactly `page_named.sql`):
//!
//! ```sql
//! WITH selected_context AS (SELECT id, name FROM recording_contexts
//!                            WHERE name = $name LIMIT 1),
//!      planned AS (<candidates, in context (SELECT id FROM selected_context)>)
//! SELECT planned.created_at, planned.id, planned.context_id,
//!        planned.data_bytes, planned.memory_type, planned.request_id,
//!        (SELECT name FROM selected_context) AS context_name,
//!        CASE WHEN row_number() OVER newest <= $page_size
//!              AND (row_number() OVER newest = 1
//!                   OR sum(planned.data_bytes::bigint + $overhead) OVER newest <= $bytes)
//!             THEN planned.data END AS data
//!   FROM planned
//! WINDOW newest AS (ORDER BY planned.created_at DESC, planned.id DESC
//!                   ROWS UNBOUNDED PRECEDING)
//!  ORDER BY planned.created_at DESC, planned.id DESC
//! ```
//!
//! The context is read once, for its id and its name. Joining each
//! candidate to its context instead cost PostgreSQL about a quarter of
//! this statement's time: the plan it keeps for the prepared statement
//! (generic, as the page size is a parameter) scanned the owner's
//! contexts once per candidate, testing the row-level security policy on
//! each. A page across every context does join, on both keys, as every
//! join of the two tables does, so that on Citus it stays on the shards of
//! one owner:
//!
//! ```sql
//! WITH planned AS (<candidates>)
//! SELECT ..., recording_contexts.name AS context_name, ...
//!   FROM planned
//!   JOIN recording_contexts
//!     ON recording_contexts.owner_id = planned.owner_id
//!    AND recording_contexts.id = planned.context_id
//! ...
//! ```

use chrono::{DateTime, Utc};
use diesel::{
    expression::{AppearsOnTable, Expression, ValidGrouping},
    pg::Pg,
    prelude::*,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{BigInt, Integer, Json, Nullable, Text, Timestamptz, Untyped},
};
use diesel_async::RunQueryDsl;
use ninaivalaigal::schema::{memories, recording_contexts};
use uuid::Uuid;

use super::{
    Conn,
    memories::{Planned, candidates, filtered_candidates, load, plan, selected_context},
    models::{JsonText, MemoryRow},
};
use crate::{
    budget,
    error::{Error, Result},
    paging::Position,
    recall::RecallQuery,
};

/// How a page is cut: at most `size` memories, and no more than fit in
/// `bytes`, each counted as its JSON plus `overhead`.
#[derive(Clone, Copy, Debug)]
pub struct PageCut {
    pub size: usize,
    pub bytes: usize,
    pub overhead: usize,
}

impl PageCut {
    /// How many of the leading candidates the page takes.
    fn taken(&self, planned: &[Planned]) -> usize {
        let candidates = &planned[..planned.len().min(self.size)];
        budget::fitting(
            candidates.iter().map(|m| m.data_bytes + self.overhead),
            self.bytes,
        )
    }
}

/// A page as planned and loaded.
#[derive(Debug)]
pub struct PlannedPage {
    /// Every candidate, newest first: up to the page size plus one.
    pub planned: Vec<Planned>,
    /// How many of the leading candidates the page takes.
    pub taken: usize,
    /// The taken memories, newest first, with their context's name. One
    /// deleted between planning and loading is absent.
    pub rows: Vec<(MemoryRow, String)>,
}

/// The page of `query` (which has no text query) after `after` (used
/// unchecked: the caller judges the page token once it knows the context),
/// cut by `cut`, in the one statement of the module's comment.
pub async fn plan_and_load(
    conn: &mut Conn<'_>,
    query: &RecallQuery,
    after: Option<Position>,
    cut: PageCut,
) -> Result<PlannedPage> {
    if query.text.is_some() {
        return Err(Error::Internal(
            "a text query is planned through the term index, not in one statement".into(),
        ));
    }
    let statement = PageStatement::new(query, after, cut)?;
    let found: Vec<PageRow> = statement.load(conn).await?;
    let mut planned = Vec::with_capacity(found.len());
    let mut rows = Vec::with_capacity(found.len());
    for row in found {
        planned.push(Planned {
            position: Position {
                created_at: row.created_at,
                id: row.id,
            },
            context_id: row.context_id,
            // A generated octet_length: never negative.
            data_bytes: usize::try_from(row.data_bytes).unwrap_or(0),
        });
        if let Some(data) = row.data {
            rows.push((
                MemoryRow {
                    id: row.id,
                    context_id: row.context_id,
                    memory_type: row.memory_type,
                    data,
                    created_at: row.created_at,
                    request_id: row.request_id,
                },
                row.context_name,
            ));
        }
    }
    let taken = cut.taken(&planned);
    // The statement and `budget` cut by the same rule; should they ever
    // differ, a memory would silently go missing from the pages.
    let loaded_exactly_the_taken = rows.len() == taken
        && rows
            .iter()
            .zip(&planned)
            .all(|((row, _), planned)| row.id == planned.position.id);
    if !loaded_exactly_the_taken {
        return Err(Error::Internal(format!(
            "the page statement loaded {} memories where the byte budget takes {taken}",
            rows.len()
        )));
    }
    Ok(PlannedPage {
        planned,
        taken,
        rows,
    })
}

/// The page of a text query after `after` (unchecked, as above), cut by
/// `cut`: planned (through the term index when it can), then loaded.
pub async fn plan_then_load(
    conn: &mut Conn<'_>,
    owner_id: i64,
    query: &RecallQuery,
    after: Option<Position>,
    cut: PageCut,
) -> Result<PlannedPage> {
    let planned = plan(conn, owner_id, query, after).await?;
    let taken = cut.taken(&planned);
    let ids: Vec<i64> = planned[..taken].iter().map(|m| m.position.id).collect();
    let rows = load(conn, &ids).await?;
    Ok(PlannedPage {
        planned,
        taken,
        rows,
    })
}

/// A candidate, with its data when the page takes it.
#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    context_id: i64,
    #[diesel(sql_type = Integer)]
    data_bytes: i32,
    #[diesel(sql_type = Text)]
    memory_type: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    request_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    context_name: String,
    #[diesel(sql_type = Nullable<Json>)]
    data: Option<JsonText>,
}

type CandidateColumns = (
    Timestamptz,
    BigInt,
    BigInt,
    Integer,
    BigInt,
    Text,
    Json,
    Nullable<diesel::sql_types::Uuid>,
);

/// The statement of the module's comment.
struct PageStatement {
    /// The one context the page is in (`id`, `name`), or `None` when it
    /// may hold every context.
    context: Option<recording_contexts::BoxedQuery<'static, Pg, (BigInt, Text)>>,
    candidates: memories::BoxedQuery<'static, Pg, CandidateColumns>,
    size: i64,
    overhead: i64,
    bytes: i64,
}

impl PageStatement {
    fn new(query: &RecallQuery, after: Option<Position>, cut: PageCut) -> Result<Self> {
        let number = |value: usize| {
            i64::try_from(value).map_err(|_| Error::Internal(format!("page cut {value} too large")))
        };
        let select = memories::table
            .select((
                memories::created_at,
                memories::id,
                memories::context_id,
                memories::data_bytes,
                memories::owner_id,
                memories::memory_type,
                memories::data,
                memories::request_id,
            ))
            .into_boxed();
        let context = selected_context(
            recording_contexts::table
                .select((recording_contexts::id, recording_contexts::name))
                .limit(1)
                .into_boxed(),
            &query.contexts,
        );
        let candidates = match context {
            None => candidates(select, query, after),
            // No such context makes the id NULL, which no memory matches.
            Some(_) => filtered_candidates(
                select.filter(memories::context_id.eq(SelectedContextId)),
                query,
                after,
            ),
        };
        Ok(Self {
            context,
            candidates,
            size: number(cut.size)?,
            overhead: number(cut.overhead)?,
            bytes: number(cut.bytes)?,
        })
    }
}

/// The id of the statement's `selected_context`: NULL when there is no
/// such context, which no memory matches.
///
/// Its own expression rather than `dsl::sql`, which diesel marks as unsafe
/// to cache: the page statement would then be parsed and planned anew on
/// every call (it was, for one commit: Recall went from about 4,500 to
/// 2,200/s).
#[derive(Clone, Copy, Debug, QueryId, ValidGrouping)]
struct SelectedContextId;

impl Expression for SelectedContextId {
    type SqlType = BigInt;
}

impl<QS> AppearsOnTable<QS> for SelectedContextId {}

impl QueryFragment<Pg> for SelectedContextId {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(SELECT selected_context.id FROM selected_context)");
        Ok(())
    }
}

impl QueryFragment<Pg> for PageStatement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        if let Some(context) = &self.context {
            out.push_sql("selected_context AS (");
            QueryFragment::<Pg>::walk_ast(context, out.reborrow())?;
            out.push_sql("), ");
        }
        out.push_sql("planned AS (");
        QueryFragment::<Pg>::walk_ast(&self.candidates, out.reborrow())?;
        out.push_sql(
            ") SELECT planned.created_at, planned.id, planned.context_id, \
             planned.data_bytes, planned.memory_type, planned.request_id, ",
        );
        out.push_sql(match self.context {
            Some(_) => "(SELECT selected_context.name FROM selected_context) AS context_name, ",
            None => "recording_contexts.name AS context_name, ",
        });
        out.push_sql("CASE WHEN row_number() OVER newest <= ");
        out.push_bind_param::<BigInt, _>(&self.size)?;
        out.push_sql(
            " AND (row_number() OVER newest = 1 \
             OR sum(planned.data_bytes::bigint + ",
        );
        out.push_bind_param::<BigInt, _>(&self.overhead)?;
        out.push_sql(") OVER newest <= ");
        out.push_bind_param::<BigInt, _>(&self.bytes)?;
        out.push_sql(") THEN planned.data END AS data FROM planned ");
        if self.context.is_none() {
            out.push_sql(
                "JOIN recording_contexts \
                 ON recording_contexts.owner_id = planned.owner_id \
                 AND recording_contexts.id = planned.context_id ",
            );
        }
        out.push_sql(
            "WINDOW newest AS (ORDER BY planned.created_at DESC, planned.id DESC \
             ROWS UNBOUNDED PRECEDING) \
             ORDER BY planned.created_at DESC, planned.id DESC",
        );
        Ok(())
    }
}

impl QueryId for PageStatement {
    type QueryId = ();
    // The candidates' filters vary; diesel caches the statement by its text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PageStatement {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;
    use ninaivalaigal::memory_v1::RecallRequest;

    use super::*;

    #[test]
    fn the_page_statement_is_its_candidates_with_the_cut_around_them() {
        let query = RecallQuery::try_from(RecallRequest {
            context: "work".into(),
            ..Default::default()
        })
        .unwrap();
        let cut = PageCut {
            size: 50,
            bytes: 1000,
            overhead: 256,
        };
        let statement = PageStatement::new(&query, None, cut).unwrap();
        let shown = debug_query::<Pg, _>(&statement).to_string();
        let expected = include_str!("page_named.sql").trim_end();
        assert_eq!(
            shown,
            format!("{expected} -- binds: [\"work\", 1, 51, 50, 256, 1000]")
        );
    }

    #[test]
    fn every_form_of_the_page_statement_is_prepared_once_per_connection() {
        // diesel-async keeps a statement prepared on its connection only
        // when every part of it says it is safe to (`dsl::sql` does not);
        // otherwise PostgreSQL parses and plans it on every call.
        let requests = [
            RecallRequest {
                context: "work".into(),
                ..Default::default()
            },
            RecallRequest::default(),
            RecallRequest {
                all_contexts: true,
                r#type: "note".into(),
                start_time: Some(prost_types::Timestamp {
                    seconds: 1_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ];
        let after = Position {
            created_at: Utc::now(),
            id: 7,
        };
        let cut = PageCut {
            size: 20,
            bytes: 1000,
            overhead: 256,
        };
        for request in requests {
            let query = RecallQuery::try_from(request).unwrap();
            for after in [None, Some(after)] {
                let statement = PageStatement::new(&query, after, cut).unwrap();
                assert!(
                    statement.is_safe_to_cache_prepared(&Pg).unwrap(),
                    "{}",
                    debug_query::<Pg, _>(&statement)
                );
            }
        }
    }
}
