//! The revoked-session list. The auth-service inserts a row into
//! `revoked_sessions` whenever it revokes a session; this service reads the
//! rows that still matter (their access tokens have not expired) every poll
//! interval, so a revoked access token stops working within that interval.

use std::{collections::HashSet, time::Duration};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ninaivalaigal::{db::PgPool, schema::revoked_sessions};
use parking_lot::RwLock;
use uuid::Uuid;

use crate::error::Result;

/// Session ids whose access tokens must be refused.
#[derive(Debug, Default)]
pub struct RevocationList {
    revoked: RwLock<HashSet<Uuid>>,
}

impl RevocationList {
    /// True when the session was revoked.
    pub fn is_revoked(&self, session_id: &Uuid) -> bool {
        self.revoked.read().contains(session_id)
    }

    /// Reloads the list from the database; returns its size.
    pub async fn reload(&self, pool: &PgPool) -> Result<usize> {
        let mut conn = pool.get().await?;
        // Not user data: every session id is readable by this role.
        let ids: HashSet<Uuid> = revoked_sessions::table
            .filter(revoked_sessions::access_expires_at.gt(diesel::dsl::now))
            .select(revoked_sessions::session_id)
            .load::<Uuid>(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let count = ids.len();
        *self.revoked.write() = ids;
        Ok(count)
    }

    /// Reloads every `every` forever; a failed read keeps the previous list
    /// (requests fail anyway while the database is unreachable).
    pub async fn poll(&self, pool: PgPool, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.reload(&pool).await {
                tracing::warn!(%error, "cannot read the revoked-session list; keeping the previous one");
            }
        }
    }
}
