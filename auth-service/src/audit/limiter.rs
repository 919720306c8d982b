//! Limits the failure rows one client can add to the audit trail: per
//! client key and kind of event, at most N rows a minute; the rest of the
//! minute's failures are counted and written as one `audit_suppressed` row.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::audit_events;
use parking_lot::Mutex;
use serde_json::json;

use super::Event;
use crate::{client::ClientKey, db::models::NewAuditEvent, error::Result};

/// The window rows are counted in.
const WINDOW: Duration = Duration::from_secs(60);

/// Failures of one kind from one client in the current window.
struct Window {
    opened: Instant,
    opened_at: DateTime<Utc>,
    written: u32,
    suppressed: u64,
}

/// What the limiter lets a failure write.
pub struct Admitted {
    /// The summary of this key's previous window, when it suppressed rows.
    pub previous: Option<Suppressed>,
}

/// The failures of one kind from one client that were only counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed {
    /// Their kind.
    pub event: Event,
    /// Their client (an address, or an IPv6 /64), if known.
    pub client: Option<ClientKey>,
    /// How many.
    pub count: u64,
    /// Start of the window they fell in.
    pub since: DateTime<Utc>,
}

impl Suppressed {
    /// Writes the summary row.
    pub async fn record(&self, conn: &mut AsyncPgConnection) -> Result<()> {
        let client_addr = self.client.map(|client| client.to_string());
        diesel::insert_into(audit_events::table)
            .values(NewAuditEvent {
                event: Event::AuditSuppressed.as_str(),
                user_id: None,
                actor_id: None,
                email: None,
                client_addr: client_addr.as_deref(),
                detail: json!({
                    "event": self.event.as_str(),
                    "count": self.count,
                    "since": self.since,
                }),
            })
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Per (kind, client) windows of failure rows.
pub struct AuditLimiter {
    rows_per_window: u32,
    windows: Mutex<HashMap<(Event, Option<ClientKey>), Window>>,
}

impl AuditLimiter {
    /// At most `rows_per_minute` rows per kind and client each minute.
    pub fn new(rows_per_minute: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            rows_per_minute > 0,
            "NINAIVALAIGAL_AUDIT_FAILURES_PER_MINUTE must be at least 1"
        );
        Ok(Self {
            rows_per_window: rows_per_minute,
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a failure of `event` from `client` may write its row now.
    pub fn admit(&self, event: Event, client: Option<IpAddr>) -> Option<Admitted> {
        self.admit_at(
            event,
            client.map(ClientKey::from),
            Instant::now(),
            Utc::now(),
        )
    }

    fn admit_at(
        &self,
        event: Event,
        client: Option<ClientKey>,
        now: Instant,
        now_utc: DateTime<Utc>,
    ) -> Option<Admitted> {
        let mut windows = self.windows.lock();
        let window = windows.entry((event, client)).or_insert(Window {
            opened: now,
            opened_at: now_utc,
            written: 0,
            suppressed: 0,
        });
        let mut previous = None;
        if now.duration_since(window.opened) >= WINDOW {
            if window.suppressed > 0 {
                previous = Some(Suppressed {
                    event,
                    client,
                    count: window.suppressed,
                    since: window.opened_at,
                });
            }
            *window = Window {
                opened: now,
                opened_at: now_utc,
                written: 0,
                suppressed: 0,
            };
        }
        if window.written < self.rows_per_window {
            window.written += 1;
            Some(Admitted { previous })
        } else {
            window.suppressed += 1;
            // A window only rolls over here, so nothing was pending.
            None
        }
    }

    /// Ends the windows that are over, returning the summaries still to be
    /// written; housekeeping calls it so a flood that stops is summarized.
    pub fn take_finished(&self) -> Vec<Suppressed> {
        self.take_finished_at(Instant::now())
    }

    fn take_finished_at(&self, now: Instant) -> Vec<Suppressed> {
        let mut finished = Vec::new();
        self.windows.lock().retain(|&(event, client), window| {
            if now.duration_since(window.opened) < WINDOW {
                return true;
            }
            if window.suppressed > 0 {
                finished.push(Suppressed {
                    event,
                    client,
                    count: window.suppressed,
                    since: window.opened_at,
                });
            }
            false
        });
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(text: &str) -> Option<ClientKey> {
        Some(ClientKey::from(text.parse::<IpAddr>().unwrap()))
    }

    #[test]
    fn a_flood_writes_n_rows_then_one_summary() {
        let limiter = AuditLimiter::new(3).unwrap();
        let start = Instant::now();
        let at = Utc::now();
        let home = client("192.0.2.1");
        let written = (0..200)
            .filter(|_| {
                limiter
                    .admit_at(Event::RefreshFailed, home, start, at)
                    .is_some()
            })
            .count();
        assert_eq!(written, 3);
        // Other clients and other kinds have their own windows.
        assert!(
            limiter
                .admit_at(Event::RefreshFailed, client("192.0.2.2"), start, at)
                .is_some()
        );
        assert!(
            limiter
                .admit_at(Event::LoginFailed, home, start, at)
                .is_some()
        );
        // The next window's first row brings the summary of the last.
        let later = start + WINDOW;
        let admitted = limiter
            .admit_at(Event::RefreshFailed, home, later, at)
            .unwrap();
        assert_eq!(
            admitted.previous,
            Some(Suppressed {
                event: Event::RefreshFailed,
                client: home,
                count: 197,
                since: at,
            })
        );
    }

    #[test]
    fn rotating_ipv6_addresses_share_a_window() {
        let limiter = AuditLimiter::new(1).unwrap();
        let now = Instant::now();
        let at = Utc::now();
        assert!(
            limiter
                .admit_at(Event::LoginFailed, client("2001:db8::1"), now, at)
                .is_some()
        );
        assert!(
            limiter
                .admit_at(Event::LoginFailed, client("2001:db8::2"), now, at)
                .is_none()
        );
    }

    #[test]
    fn finished_windows_are_summarized_once_and_forgotten() {
        let limiter = AuditLimiter::new(1).unwrap();
        let start = Instant::now();
        let at = Utc::now();
        let home = client("192.0.2.1");
        for _ in 0..5 {
            limiter.admit_at(Event::LoginThrottled, home, start, at);
        }
        limiter.admit_at(Event::LoginFailed, home, start, at);
        assert!(limiter.take_finished_at(start).is_empty());
        let finished = limiter.take_finished_at(start + WINDOW);
        assert_eq!(finished.len(), 1, "only windows that suppressed rows");
        assert_eq!(finished[0].event, Event::LoginThrottled);
        assert_eq!(finished[0].count, 4);
        assert!(limiter.take_finished_at(start + WINDOW).is_empty());
        assert!(limiter.windows.lock().is_empty());
    }

    #[test]
    fn zero_rows_is_refused() {
        assert!(AuditLimiter::new(0).is_err());
    }
}
