//! The caller's row of `memory_usage`, which triggers on `memories` keep
//! current. Row-level security limits it to the caller's own row.

use diesel::{prelude::*, upsert::excluded};
use diesel_async::RunQueryDsl;

use super::Conn;
use ninaivalaigal::schema::memory_usage;

use crate::{error::Result, quota::Usage};

/// The caller's usage, with the row locked until the transaction ends, so
/// that concurrent Remembers check the quota one after the other. Creates
/// the row on the caller's first memory.
pub async fn lock(conn: &mut Conn<'_>, owner_id: i64) -> Result<Usage> {
    // An upsert that changes nothing: it locks the row whether it was there
    // or not, and returns the latest committed counts.
    let (memories, bytes) = diesel::insert_into(memory_usage::table)
        .values(memory_usage::owner_id.eq(owner_id))
        .on_conflict(memory_usage::owner_id)
        .do_update()
        .set(memory_usage::owner_id.eq(excluded(memory_usage::owner_id)))
        .returning((memory_usage::memories, memory_usage::bytes))
        .get_result::<(i64, i64)>(conn)
        .await?;
    Ok(Usage { memories, bytes })
}
