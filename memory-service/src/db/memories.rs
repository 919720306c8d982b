//! Queries on `memories`. Row-level security limits every one of them to the
//! caller's rows; none filters by owner itself.

use chrono::{DateTime, Utc};
use diesel::{
    dsl::sql,
    pg::Pg,
    prelude::*,
    sql_types::{BigInt, Bool, Integer, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;

use super::Conn;
use ninaivalaigal::schema::{memories, recording_contexts};

use super::{
    contexts,
    models::{MemoryRow, NewMemory},
    position::{NewerThan, OlderThan},
    terms,
};
use uuid::Uuid;

use crate::{
    error::Result,
    paging::Position,
    recall::{ContextSelection, RecallQuery},
};

/// Inserts a memory and returns it, or `None` when its request id was
/// stored already (the unique `(owner_id, request_id)` decides, so of
/// racing retries exactly one inserts; one that waited on another's insert
/// finds it committed once this returns).
pub async fn insert_once(conn: &mut Conn<'_>, new: &NewMemory<'_>) -> Result<Option<MemoryRow>> {
    Ok(diesel::insert_into(memories::table)
        .values(new)
        .on_conflict((memories::owner_id, memories::request_id))
        .do_nothing()
        .returning(MemoryRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// The memory stored under a request id, with its context's name.
pub async fn find_by_request_id(
    conn: &mut Conn<'_>,
    request_id: Uuid,
) -> Result<Option<(MemoryRow, String)>> {
    Ok(memories::table
        .inner_join(
            recording_contexts::table.on(recording_contexts::owner_id
                .eq(memories::owner_id)
                .and(recording_contexts::id.eq(memories::context_id))),
        )
        .filter(memories::request_id.eq(request_id))
        .select((MemoryRow::as_select(), recording_contexts::name))
        .first(conn)
        .await
        .optional()?)
}

/// Up to `limit` memories of a context in export order (oldest first, then
/// by id), after `after` if given: keyset pages of one snapshot.
pub async fn export_page(
    conn: &mut Conn<'_>,
    context_id: i64,
    after: Option<Position>,
    limit: i64,
) -> Result<Vec<MemoryRow>> {
    let mut select = memories::table
        .filter(memories::context_id.eq(context_id))
        .select(MemoryRow::as_select())
        .order((memories::created_at.asc(), memories::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        select = select.filter(NewerThan(after));
    }
    Ok(select.load(conn).await?)
}

/// A memory a Recall page may hold: where it is in Recall's order, its
/// context and how many bytes of JSON it holds, without the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Its place in Recall's order.
    pub position: Position,
    /// Its context.
    pub context_id: i64,
    /// Bytes of its JSON.
    pub data_bytes: usize,
}

/// The candidates of one page of `query`, newest first: up to its page size
/// plus one (to tell whether another page follows; see
/// `PageSize::fetch_limit`), in the contexts it selects, after `after` if
/// given. Reads sizes, not data, so the page can be cut to its byte budget
/// before any data is loaded.
///
/// The context is looked up inside the statement (a scalar subquery, run
/// once, whose id then serves the index on context and time like a
/// constant), which saves Recall a round trip; a context that does not
/// exist, or no recording one, gives no candidates.
///
/// For a named context and no other filter, PostgreSQL receives (`$1` the
/// name, `$2` 1, `$3` the page size plus one):
///
/// ```sql
#[doc = include_str!("plan_named.sql")]
/// ```
///
/// The recording context's has `"recording_contexts"."is_active" = $1`
/// (true) in place of the name; each other filter adds its condition.
///
/// `owner_id`, the verified token's user, routes a text query's statements
/// on Citus (see `terms`); row-level security decides which rows exist.
pub async fn plan(
    conn: &mut Conn<'_>,
    owner_id: i64,
    query: &RecallQuery,
    after: Option<Position>,
) -> Result<Vec<Planned>> {
    // A text query reaches its candidates through the term index when it
    // can (see `terms`); otherwise it filters the scan below.
    if let Some(text) = &query.text {
        let context_id = match &query.contexts {
            ContextSelection::All => None,
            selection => match context_id(conn, selection).await? {
                Some(id) => Some(id),
                // No such context: no candidates, as the scan would find.
                None => return Ok(Vec::new()),
            },
        };
        if let Some(planned) = terms::plan(conn, owner_id, query, text, context_id, after).await? {
            return Ok(planned);
        }
    }
    let rows: Vec<(DateTime<Utc>, i64, i64, i32)> = plan_query(query, after).load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(created_at, id, context_id, data_bytes)| Planned {
            position: Position { created_at, id },
            context_id,
            // A generated octet_length: never negative.
            data_bytes: usize::try_from(data_bytes).unwrap_or(0),
        })
        .collect())
}

/// The id of the context `selection` names (not [`ContextSelection::All`]).
async fn context_id(conn: &mut Conn<'_>, selection: &ContextSelection) -> Result<Option<i64>> {
    let context = match selection {
        ContextSelection::Named(name) => contexts::find_by_name(conn, name.as_str()).await?,
        ContextSelection::Recording => contexts::find_recording(conn).await?,
        ContextSelection::All => None,
    };
    Ok(context.map(|context| context.id))
}

/// The statement of [`plan`].
fn plan_query(
    query: &RecallQuery,
    after: Option<Position>,
) -> memories::BoxedQuery<'static, Pg, (Timestamptz, BigInt, BigInt, Integer)> {
    candidates(
        memories::table
            .select((
                memories::created_at,
                memories::id,
                memories::context_id,
                memories::data_bytes,
            ))
            .into_boxed(),
        query,
        after,
    )
}

/// `select` (of `memories`) limited to `query`'s candidates: in the
/// contexts it selects, matching its filters, after `after` if given,
/// newest first, up to its page size plus one.
pub(super) fn candidates<ST: 'static>(
    select: memories::BoxedQuery<'static, Pg, ST>,
    query: &RecallQuery,
    after: Option<Position>,
) -> memories::BoxedQuery<'static, Pg, ST> {
    let context = recording_contexts::table
        .select(recording_contexts::id)
        .into_boxed();
    let select = match selected_context(context, &query.contexts) {
        None => select,
        Some(context) => select.filter(memories::context_id.nullable().eq(context.single_value())),
    };
    filtered_candidates(select, query, after)
}

/// `select` (of `recording_contexts`) narrowed to the one context
/// `selection` names, or `None` when it selects every context. Row-level
/// security leaves at most one: names are unique per owner, and so is the
/// recording context.
pub(super) fn selected_context<ST: 'static>(
    select: recording_contexts::BoxedQuery<'static, Pg, ST>,
    selection: &ContextSelection,
) -> Option<recording_contexts::BoxedQuery<'static, Pg, ST>> {
    match selection {
        ContextSelection::All => None,
        ContextSelection::Named(name) => {
            Some(select.filter(recording_contexts::name.eq(name.as_str().to_owned())))
        }
        ContextSelection::Recording => Some(select.filter(recording_contexts::is_active.eq(true))),
    }
}

/// [`candidates`] without the choice of context, which `select` (of
/// `memories`) has made already: `query`'s other filters, after `after` if
/// given, newest first, up to its page size plus one.
pub(super) fn filtered_candidates<ST: 'static>(
    mut select: memories::BoxedQuery<'static, Pg, ST>,
    query: &RecallQuery,
    after: Option<Position>,
) -> memories::BoxedQuery<'static, Pg, ST> {
    select = select
        .order((memories::created_at.desc(), memories::id.desc()))
        .limit(query.page_size.fetch_limit());
    if let Some(memory_type) = &query.memory_type {
        select = select.filter(memories::memory_type.eq(memory_type.as_str().to_owned()));
    }
    if let Some(start) = query.time.start() {
        select = select.filter(memories::created_at.ge(start));
    }
    if let Some(end) = query.time.end() {
        select = select.filter(memories::created_at.lt(end));
    }
    if let Some(text) = &query.text {
        // The DSL has no tsquery functions; the query text is a bound parameter.
        select = select.filter(
            sql::<Bool>("memories.search @@ websearch_to_tsquery('english'::regconfig, ")
                .bind::<Text, _>(text.as_str().to_owned())
                .sql(")"),
        );
    }
    if let Some(after) = after {
        select = select.filter(OlderThan(after));
    }
    select
}

/// The memories with these ids, with their context's name, newest first.
/// One deleted since it was planned is simply absent.
pub async fn load(conn: &mut Conn<'_>, ids: &[i64]) -> Result<Vec<(MemoryRow, String)>> {
    Ok(memories::table
        .inner_join(
            recording_contexts::table.on(recording_contexts::owner_id
                .eq(memories::owner_id)
                .and(recording_contexts::id.eq(memories::context_id))),
        )
        .filter(memories::id.eq_any(ids))
        .select((MemoryRow::as_select(), recording_contexts::name))
        .order((memories::created_at.desc(), memories::id.desc()))
        .load(conn)
        .await?)
}

/// Deletes one memory; returns whether it existed (for the caller).
pub async fn delete(conn: &mut Conn<'_>, id: i64) -> Result<bool> {
    let deleted = diesel::delete(memories::table.filter(memories::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;
    use ninaivalaigal::memory_v1::RecallRequest;

    use super::*;

    #[test]
    fn a_plan_finds_its_context_inside_the_statement() {
        let query = RecallQuery::try_from(RecallRequest {
            context: "work".into(),
            ..Default::default()
        })
        .unwrap();
        let shown = debug_query(&plan_query(&query, None)).to_string();
        let expected = include_str!("plan_named.sql").trim_end();
        assert_eq!(shown, format!("{expected} -- binds: [\"work\", 1, 51]"));
    }
}
