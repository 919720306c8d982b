//! The memory-service's page cursors, carried in page tokens by the kernel's
//! [`ninaivalaigal::paging`] (which bounds, decodes and kind-checks them and
//! refuses NUL characters). Recall's tokens also carry a fingerprint of the
//! query, so a token cannot be replayed with different filters.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ninaivalaigal::{
    paging::{self, Cursor, PageLimits, PagingError},
    timestamp,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// ListContexts' page sizes: 100 by default, at most 1000.
pub const CONTEXTS_PAGE_LIMITS: PageLimits = PageLimits::new(100, 1000);

/// Where ListContexts continues: after this name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextsCursor {
    /// The last name returned.
    pub after: String,
}

impl Cursor for ContextsCursor {
    const KIND: &'static str = "contexts";
}

impl ContextsCursor {
    /// A cursor after `name`.
    pub fn after(name: &str) -> Self {
        Self {
            after: name.to_owned(),
        }
    }
}

/// A memory's place in Recall's order (newest first): its `created_at`
/// and `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// `created_at` of the memory; within the range a `Timestamp` holds.
    pub created_at: DateTime<Utc>,
    /// `id` of the memory.
    pub id: i64,
}

/// Where Recall continues: after a position, for the query with a
/// fingerprint. Only [`MemoriesCursor::decode`] makes one from a token, so
/// its position is a valid time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoriesCursor {
    position: Position,
    query: String,
}

/// The token's JSON (besides the kind tag).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoriesToken {
    /// `created_at` of the last memory returned, microseconds since the epoch.
    micros: i64,
    /// `id` of the last memory returned.
    id: i64,
    /// Fingerprint of the query the token belongs to.
    query: String,
}

impl Cursor for MemoriesToken {
    const KIND: &'static str = "memories";
}

impl MemoriesCursor {
    /// The page token continuing after `position` in `query`.
    pub fn encode(position: Position, query: &QueryFingerprint) -> Result<String, Error> {
        Ok(paging::encode(&MemoriesToken {
            micros: position.created_at.timestamp_micros(),
            id: position.id,
            query: query.0.clone(),
        })?)
    }

    /// The cursor of a page token; `None` for an empty token (the first
    /// page). A position outside the range of a `Timestamp` is refused here,
    /// so it never reaches the database.
    pub fn decode(token: &str) -> Result<Option<Self>, Error> {
        let Some(token) = paging::decode::<MemoriesToken>(token)? else {
            return Ok(None);
        };
        let created_at = DateTime::from_timestamp_micros(token.micros)
            .filter(|time| timestamp::in_range(*time))
            .ok_or(PagingError::InvalidToken)?;
        Ok(Some(Self {
            position: Position {
                created_at,
                id: token.id,
            },
            query: token.query,
        }))
    }

    /// The position before the query is known, for a read that runs first
    /// and whose result is dropped unless [`MemoriesCursor::position`] then
    /// accepts the token (Recall learns its context from that read). Only a
    /// filter on the caller's own rows: no harm done by a foreign token.
    pub fn unchecked_position(&self) -> Position {
        self.position
    }

    /// The position, if the token belongs to `query`.
    pub fn position(&self, query: &QueryFingerprint) -> Result<Position, Error> {
        if self.query != query.0 {
            return Err(Error::InvalidArgument(
                "page_token belongs to a different query: keep context, all_contexts, query, type, start_time and end_time as on the first page".into(),
            ));
        }
        Ok(self.position)
    }
}

/// A digest of the fields that select memories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryFingerprint(String);

impl QueryFingerprint {
    /// Fingerprint of the given parts (each is length-prefixed, so parts
    /// cannot run into each other).
    pub fn of(parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        Self(URL_SAFE_NO_PAD.encode(&digest[..12]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn invalid(result: Result<Option<MemoriesCursor>, Error>) -> bool {
        matches!(result, Err(Error::InvalidArgument(_)))
    }

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let query = QueryFingerprint::of(&["ctx", "", "note"]);
        let position = Position {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: 42,
        };
        let token = MemoriesCursor::encode(position, &query).unwrap();
        let cursor = MemoriesCursor::decode(&token).unwrap().unwrap();
        assert_eq!(cursor.position(&query).unwrap(), position);
        let other = QueryFingerprint::of(&["ctx", "", "decision"]);
        assert!(matches!(
            cursor.position(&other),
            Err(Error::InvalidArgument(_))
        ));
        // A contexts token is not a memories token, and garbage is refused.
        let contexts = paging::encode(&ContextsCursor::after("a")).unwrap();
        assert!(invalid(MemoriesCursor::decode(&contexts)));
        assert!(invalid(MemoriesCursor::decode("not a token!")));
        assert!(MemoriesCursor::decode("").unwrap().is_none());
        let cursor = paging::decode::<ContextsCursor>(&contexts)
            .unwrap()
            .unwrap();
        assert_eq!(cursor.after, "a");
    }

    #[test]
    fn tokens_of_the_earlier_format_still_decode() {
        let token = raw(r#"{"k":"memories","micros":1700000000123456,"id":42,"query":"q"}"#);
        let cursor = MemoriesCursor::decode(&token).unwrap().unwrap();
        assert_eq!(cursor.position.id, 42);
        let token = raw(r#"{"k":"contexts","after":"work"}"#);
        let cursor = paging::decode::<ContextsCursor>(&token).unwrap().unwrap();
        assert_eq!(cursor.after, "work");
    }

    #[test]
    fn crafted_positions_never_reach_the_database() {
        // Around year -251000 chrono still holds a time; PostgreSQL does not.
        for micros in [
            i64::MIN,
            -8_000_000_000_000_000_000,
            i64::MAX,
            -62_135_596_800_000_001,
        ] {
            let token = raw(&format!(
                r#"{{"k":"memories","micros":{micros},"id":1,"query":"q"}}"#
            ));
            assert!(invalid(MemoriesCursor::decode(&token)), "{micros}");
        }
        let nul = raw(r#"{"k":"contexts","after":"a\u0000"}"#);
        assert!(matches!(
            paging::decode::<ContextsCursor>(&nul).map_err(Error::from),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn fingerprint_parts_do_not_run_together() {
        assert_ne!(
            QueryFingerprint::of(&["ab", "c"]),
            QueryFingerprint::of(&["a", "bc"])
        );
    }
}
