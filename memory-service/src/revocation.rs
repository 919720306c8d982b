//! The revoked-session list. The auth-service inserts a row into
//! `revoked_sessions` whenever it revokes a session; this service reads the
//! rows that still matter (their access tokens could still pass the expiry
//! check, leeway included) every poll interval, so a revoked access token
//! stops working within that interval.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ninaivalaigal::{db::PgPool, metrics::Metrics, schema::revoked_sessions};
use parking_lot::RwLock;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::Result;

/// A list older than this many poll intervals is stale: several reads in a
/// row have failed.
const STALE_AFTER_POLLS: u32 = 3;
/// ...but never younger than this, so that a slow read under load with a
/// sub-second poll interval does not flip readiness.
const MIN_STALE_AGE: Duration = Duration::from_secs(5);

/// Session ids whose access tokens must be refused.
#[derive(Debug)]
pub struct RevocationList {
    loaded: RwLock<Loaded>,
    /// The clock leeway of token checks: a token is accepted until this long
    /// after it expired, so its revocation must be kept as long.
    leeway: Duration,
}

/// The list as last read.
#[derive(Debug, Default)]
struct Loaded {
    revoked: HashSet<Uuid>,
    /// When it was read; `None` until the first read succeeds.
    at: Option<Instant>,
}

impl RevocationList {
    /// An empty, never-read list for tokens checked with `leeway`.
    pub fn new(leeway: Duration) -> Self {
        Self {
            loaded: RwLock::default(),
            leeway,
        }
    }

    /// How old the list may be before readiness fails, when it is read
    /// every `poll`.
    pub fn max_age(poll: Duration) -> Duration {
        poll.saturating_mul(STALE_AFTER_POLLS).max(MIN_STALE_AGE)
    }

    /// Publishes the list's size and age in `metrics`, read at each scrape.
    /// The age grows past the poll interval only while reads fail; the
    /// readiness check fails at [`Self::max_age`].
    pub fn observe(self: &Arc<Self>, metrics: &Metrics) {
        const SIZE: &str = "ninaivalaigal_revoked_sessions";
        const AGE: &str = "ninaivalaigal_revocation_list_age_seconds";
        metrics.describe(
            SIZE,
            "Revoked sessions whose access tokens are being refused (the list as last read).",
        );
        metrics.describe(
            AGE,
            "Seconds since the revoked-session list was last read from the database (absent until the first read).",
        );
        let (size, age) = (metrics.gauge(SIZE, &[]), metrics.gauge(AGE, &[]));
        let list = self.clone();
        metrics.on_scrape(move || {
            let loaded = list.loaded.read();
            size.set(loaded.revoked.len() as f64);
            if let Some(at) = loaded.at {
                age.set(at.elapsed().as_secs_f64());
            }
        });
    }

    /// True when the session was revoked.
    pub fn is_revoked(&self, session_id: &Uuid) -> bool {
        self.loaded.read().revoked.contains(session_id)
    }

    /// True once the list has been read at least once; before that no
    /// token can be trusted not to be revoked.
    pub fn has_loaded(&self) -> bool {
        self.loaded.read().at.is_some()
    }

    /// `Ok` when the list was read within `max_age` before `now`; otherwise
    /// why not, for the readiness log.
    pub fn freshness(&self, now: Instant, max_age: Duration) -> Result<(), String> {
        match self.loaded.read().at {
            None => Err("the revoked-session list has never been read from the database".into()),
            Some(at) if now.saturating_duration_since(at) > max_age => Err(format!(
                "the revoked-session list was last read {} s ago (stale after {} s)",
                now.saturating_duration_since(at).as_secs(),
                max_age.as_secs_f64()
            )),
            Some(_) => Ok(()),
        }
    }

    /// The oldest `access_expires_at` that still matters at `now`.
    fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        TimeDelta::from_std(self.leeway)
            .ok()
            .and_then(|leeway| now.checked_sub_signed(leeway))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Reloads the list from the database; returns its size.
    pub async fn reload(&self, pool: &PgPool) -> Result<usize> {
        let mut conn = pool.get().await?;
        // The service's clock, as the token checks use it.
        let cutoff = self.cutoff(Utc::now());
        // Not user data: every session id is readable by this role.
        let ids: HashSet<Uuid> = revoked_sessions::table
            .filter(revoked_sessions::access_expires_at.gt(cutoff))
            .select(revoked_sessions::session_id)
            .load::<Uuid>(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let count = ids.len();
        self.replace(ids, Instant::now());
        Ok(count)
    }

    fn replace(&self, revoked: HashSet<Uuid>, at: Instant) {
        *self.loaded.write() = Loaded {
            revoked,
            at: Some(at),
        };
    }

    /// Reloads every `every` forever; a failed read keeps the previous list
    /// (requests fail anyway while the database is unreachable, and
    /// readiness fails once the list is stale).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_never_read_or_read_too_long_ago_is_not_fresh() {
        let list = RevocationList::new(Duration::from_secs(30));
        let now = Instant::now();
        let max_age = Duration::from_secs(15);
        assert!(!list.has_loaded());
        let never = list.freshness(now, max_age).unwrap_err();
        assert!(never.contains("never been read"), "{never}");

        let session = Uuid::new_v4();
        list.replace(HashSet::from([session]), now);
        assert!(list.has_loaded());
        assert!(list.is_revoked(&session));
        assert!(list.freshness(now + max_age, max_age).is_ok());
        let stale = list
            .freshness(now + max_age + Duration::from_secs(1), max_age)
            .unwrap_err();
        assert!(stale.contains("16 s ago"), "{stale}");
    }

    #[test]
    fn the_stale_age_is_a_few_polls_but_not_less_than_a_few_seconds() {
        assert_eq!(
            RevocationList::max_age(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(
            RevocationList::max_age(Duration::from_millis(200)),
            MIN_STALE_AGE
        );
    }

    #[test]
    fn revocations_are_kept_through_the_token_leeway() {
        let list = RevocationList::new(Duration::from_secs(30));
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(list.cutoff(now), now - TimeDelta::seconds(30));
        let huge = RevocationList::new(Duration::MAX);
        assert_eq!(huge.cutoff(now), DateTime::<Utc>::MIN_UTC);
    }
}
