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

use super::models::{MemoryRow, NewMemory};
use crate::error::Result;

/// Which memories Recall wants.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only this context (else every context of the caller).
    pub context_id: Option<i64>,
    /// Only this type.
    pub memory_type: Option<String>,
    /// Created at or after.
    pub start: Option<DateTime<Utc>>,
    /// Created before.
    pub end: Option<DateTime<Utc>>,
    /// Full-text query, web-search syntax.
    pub text: Option<String>,
}

/// Inserts a memory and returns it.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewMemory<'_>) -> Result<MemoryRow> {
    Ok(diesel::insert_into(memories::table)
        .values(new)
        .returning(MemoryRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Up to `limit` selected memories with their context's name, newest first,
/// after the position (`created_at`, `id`) if given.
pub async fn recall(
    conn: &mut AsyncPgConnection,
    selection: &Selection,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<(MemoryRow, String)>> {
    let mut query = memories::table
        .inner_join(
            recording_contexts::table.on(recording_contexts::owner_id
                .eq(memories::owner_id)
                .and(recording_contexts::id.eq(memories::context_id))),
        )
        .select((MemoryRow::as_select(), recording_contexts::name))
        .order((memories::created_at.desc(), memories::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(context_id) = selection.context_id {
        query = query.filter(memories::context_id.eq(context_id));
    }
    if let Some(memory_type) = &selection.memory_type {
        query = query.filter(memories::memory_type.eq(memory_type.clone()));
    }
    if let Some(start) = selection.start {
        query = query.filter(memories::created_at.ge(start));
    }
    if let Some(end) = selection.end {
        query = query.filter(memories::created_at.lt(end));
    }
    if let Some(text) = &selection.text {
        // The DSL has no tsquery functions; the query text is a bound parameter.
        query = query.filter(
            sql::<Bool>("memories.search @@ websearch_to_tsquery('english'::regconfig, ")
                .bind::<Text, _>(text.clone())
                .sql(")"),
        );
    }
    if let Some((created_at, id)) = after {
        query = query.filter(
            memories::created_at
                .lt(created_at)
                .or(memories::created_at.eq(created_at).and(memories::id.lt(id))),
        );
    }
    Ok(query.load(conn).await?)
}

/// Deletes one memory; returns whether it existed (for the caller).
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    let deleted = diesel::delete(memories::table.filter(memories::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}
