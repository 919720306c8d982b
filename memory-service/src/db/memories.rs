//! Queries on `memories`. Row-level security limits every one of them to the
//! caller's rows; none filters by owner itself.

use chrono::{DateTime, Utc};
use diesel::{
    dsl::sql,
    prelude::*,
    sql_types::{Bool, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::{memories, recording_contexts};

use super::{
    models::{MemoryRow, NewMemory},
    terms,
};
use uuid::Uuid;

use crate::{error::Result, paging::Position, recall::RecallQuery};

/// Inserts a memory and returns it, or `None` when its request id was
/// stored already (the unique `(owner_id, request_id)` decides, so of
/// racing retries exactly one inserts; one that waited on another's insert
/// finds it committed once this returns).
pub async fn insert_once(
    conn: &mut AsyncPgConnection,
    new: &NewMemory<'_>,
) -> Result<Option<MemoryRow>> {
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
    conn: &mut AsyncPgConnection,
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
    conn: &mut AsyncPgConnection,
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
    if let Some(Position { created_at, id }) = after {
        select = select.filter(
            memories::created_at
                .gt(created_at)
                .or(memories::created_at.eq(created_at).and(memories::id.gt(id))),
        );
    }
    Ok(select.load(conn).await?)
}

/// A memory a Recall page may hold: where it is in Recall's order and how
/// many bytes of JSON it holds, without the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Its place in Recall's order.
    pub position: Position,
    /// Bytes of its JSON.
    pub data_bytes: usize,
}

/// The candidates of one page of `query`, newest first: up to its page size
/// plus one (to tell whether another page follows; see
/// `PageSize::fetch_limit`), in the context `context_id` (every context if
/// `None`), after `after` if given. Reads sizes, not data, so the page can
/// be cut to its byte budget before any data is loaded.
pub async fn plan(
    conn: &mut AsyncPgConnection,
    query: &RecallQuery,
    context_id: Option<i64>,
    after: Option<Position>,
) -> Result<Vec<Planned>> {
    // A text query reaches its candidates through the term index when it
    // can (see `terms`); otherwise it filters the scan below.
    if let Some(text) = &query.text
        && let Some(rows) = terms::plan(conn, query, text, context_id, after).await?
    {
        return Ok(planned(rows));
    }
    let mut select = memories::table
        .select((memories::created_at, memories::id, memories::data_bytes))
        .order((memories::created_at.desc(), memories::id.desc()))
        .limit(query.page_size.fetch_limit())
        .into_boxed();
    if let Some(context_id) = context_id {
        select = select.filter(memories::context_id.eq(context_id));
    }
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
    if let Some(Position { created_at, id }) = after {
        select = select.filter(
            memories::created_at
                .lt(created_at)
                .or(memories::created_at.eq(created_at).and(memories::id.lt(id))),
        );
    }
    Ok(planned(select.load(conn).await?))
}

/// Planned memories from rows of (created_at, id, data_bytes).
fn planned(rows: Vec<(DateTime<Utc>, i64, i32)>) -> Vec<Planned> {
    rows.into_iter()
        .map(|(created_at, id, data_bytes)| Planned {
            position: Position { created_at, id },
            // A generated octet_length: never negative.
            data_bytes: usize::try_from(data_bytes).unwrap_or(0),
        })
        .collect()
}

/// The memories with these ids, with their context's name, newest first.
/// One deleted since it was planned is simply absent.
pub async fn load(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<Vec<(MemoryRow, String)>> {
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
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    let deleted = diesel::delete(memories::table.filter(memories::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}
