//! Queries on `recording_contexts`. Row-level security limits every one of
//! them to the caller's rows; none filters by owner itself, but for
//! [`lock_all`], which must name the owner's shard on Citus.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::Conn;
use ninaivalaigal::schema::{memories, recording_contexts};

use super::models::{ContextRow, NewContext};
use crate::error::Result;

/// Inserts a context and returns it.
pub async fn insert(conn: &mut Conn<'_>, new: &NewContext<'_>) -> Result<ContextRow> {
    Ok(diesel::insert_into(recording_contexts::table)
        .values(new)
        .returning(ContextRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The context named `name`, if the caller has one.
pub async fn find_by_name(conn: &mut Conn<'_>, name: &str) -> Result<Option<ContextRow>> {
    Ok(recording_contexts::table
        .filter(recording_contexts::name.eq(name))
        .select(ContextRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The context that is recording, if any.
pub async fn find_recording(conn: &mut Conn<'_>) -> Result<Option<ContextRow>> {
    Ok(recording_contexts::table
        .filter(recording_contexts::is_active.eq(true))
        .select(ContextRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Locks every context of the caller (`owner_id`, the scope's user), so that
/// concurrent StartRecording calls take turns instead of racing for the
/// one-recording index.
pub async fn lock_all(conn: &mut Conn<'_>, owner_id: i64) -> Result<()> {
    // In id order: two transactions that lock in different orders deadlock,
    // and a seqscan's order changes as updates move rows. The owner filter
    // restricts nothing that row-level security has not already; it names
    // the one shard on Citus, which locks rows only in a query routed to a
    // single shard.
    recording_contexts::table
        .filter(recording_contexts::owner_id.eq(owner_id))
        .select(recording_contexts::id)
        .order(recording_contexts::id)
        .for_update()
        .load::<i64>(conn)
        .await?;
    Ok(())
}

/// Up to `limit` contexts by name, after `after`.
pub async fn list(conn: &mut Conn<'_>, after: Option<&str>, limit: i64) -> Result<Vec<ContextRow>> {
    let mut query = recording_contexts::table
        .select(ContextRow::as_select())
        .order(recording_contexts::name.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(recording_contexts::name.gt(after.to_owned()));
    }
    Ok(query.load(conn).await?)
}

/// Sets whether a context is recording, touching its update time.
pub async fn set_recording(conn: &mut Conn<'_>, id: i64, recording: bool) -> Result<ContextRow> {
    Ok(diesel::update(recording_contexts::table)
        .filter(recording_contexts::id.eq(id))
        .set((
            recording_contexts::is_active.eq(recording),
            recording_contexts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ContextRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes a context and its memories; returns how many memories went.
pub async fn delete(conn: &mut Conn<'_>, id: i64) -> Result<i64> {
    // The foreign key would cascade too; deleting first gives the count.
    let memories = diesel::delete(memories::table.filter(memories::context_id.eq(id)))
        .execute(conn)
        .await?;
    diesel::delete(recording_contexts::table.filter(recording_contexts::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(i64::try_from(memories).unwrap_or(i64::MAX))
}
