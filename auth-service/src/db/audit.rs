//! Queries on the audit trail beyond recording (which `crate::audit` does).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;
use ninaivalaigal::schema::audit_events;

/// Rows deleted per statement, so pruning a large backlog never holds many
/// row locks or one long transaction.
const PRUNE_BATCH: i64 = 10_000;

/// Deletes the rows that occurred before `before`; returns how many.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> Result<usize> {
    let mut total = 0;
    loop {
        let batch: Vec<i64> = audit_events::table
            .filter(audit_events::occurred_at.lt(before))
            .select(audit_events::id)
            .limit(PRUNE_BATCH)
            .load(conn)
            .await?;
        let deleted = diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&batch)))
            .execute(conn)
            .await?;
        total += deleted;
        if (deleted as i64) < PRUNE_BATCH {
            return Ok(total);
        }
    }
}
