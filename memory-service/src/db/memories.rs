//! Queries on `memories`. Row-level security limits every one of them to the
//! caller's rows; none filters by owner itself.

use diesel::{
    dsl::sql,
    prelude::*,
    sql_types::{Bool, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::{memories, recording_contexts};

use super::models::{MemoryRow, NewMemory};
use crate::{error::Result, paging::Position, recall::RecallQuery};

/// Inserts a memory and returns it.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewMemory<'_>) -> Result<MemoryRow> {
    Ok(diesel::insert_into(memories::table)
        .values(new)
        .returning(MemoryRow::as_returning())
        .get_result(conn)
        .await?)
}

/// One page of `query`'s memories (plus one more, to tell whether another
/// page follows; see `PageSize::fetch_limit`) with their context's name,
/// newest first: in the context `context_id` (every context if `None`),
/// after `after` if given.
pub async fn recall(
    conn: &mut AsyncPgConnection,
    query: &RecallQuery,
    context_id: Option<i64>,
    after: Option<Position>,
) -> Result<Vec<(MemoryRow, String)>> {
    let mut select = memories::table
        .inner_join(
            recording_contexts::table.on(recording_contexts::owner_id
                .eq(memories::owner_id)
                .and(recording_contexts::id.eq(memories::context_id))),
        )
        .select((MemoryRow::as_select(), recording_contexts::name))
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
    Ok(select.load(conn).await?)
}

/// Deletes one memory; returns whether it existed (for the caller).
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    let deleted = diesel::delete(memories::table.filter(memories::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}
