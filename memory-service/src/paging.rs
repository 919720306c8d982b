//! Opaque page tokens: base64url JSON holding the position after the last
//! item returned. Recall's tokens also carry a fingerprint of the query, so
//! a token cannot be replayed with different filters. A token the client
//! altered is at worst a different position in the caller's own rows (row
//! security still applies); a token that does not parse is INVALID_ARGUMENT.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Where ListContexts continues: after this name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextsCursor {
    /// Kind tag, so a token of another list does not parse as this one.
    k: ContextsKind,
    /// The last name returned.
    pub after: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum ContextsKind {
    #[serde(rename = "contexts")]
    Contexts,
}

impl ContextsCursor {
    /// A cursor after `name`.
    pub fn after(name: &str) -> Self {
        Self {
            k: ContextsKind::Contexts,
            after: name.to_owned(),
        }
    }
}

/// Where Recall continues: after the memory created at `micros` with `id`
/// (newest first), for the query with this fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoriesCursor {
    k: MemoriesKind,
    /// `created_at` of the last memory returned, microseconds since the epoch.
    micros: i64,
    /// `id` of the last memory returned.
    pub id: i64,
    /// Fingerprint of the query the token belongs to.
    query: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum MemoriesKind {
    #[serde(rename = "memories")]
    Memories,
}

impl MemoriesCursor {
    /// A cursor after the memory (`created_at`, `id`) of `query`.
    pub fn after(created_at: DateTime<Utc>, id: i64, query: &QueryFingerprint) -> Self {
        Self {
            k: MemoriesKind::Memories,
            micros: created_at.timestamp_micros(),
            id,
            query: query.0.clone(),
        }
    }

    /// The position, if the token belongs to `query`.
    pub fn position(&self, query: &QueryFingerprint) -> Result<(DateTime<Utc>, i64), Error> {
        if self.query != query.0 {
            return Err(Error::InvalidArgument(
                "page_token belongs to a different query: keep context, all_contexts, query, type, start_time and end_time as on the first page".into(),
            ));
        }
        let created_at = DateTime::from_timestamp_micros(self.micros).ok_or_else(invalid)?;
        Ok((created_at, self.id))
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

/// Encodes a cursor as a page token.
pub fn encode<T: Serialize>(cursor: &T) -> String {
    // Serializing these plain structs cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// Decodes a page token; `None` for an empty token (the first page).
pub fn decode<T: DeserializeOwned>(token: &str) -> Result<Option<T>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| invalid())
}

fn invalid() -> Error {
    Error::InvalidArgument(
        "page_token is not valid: pass the next_page_token of the previous response unchanged"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let query = QueryFingerprint::of(&["ctx", "", "note"]);
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let token = encode(&MemoriesCursor::after(now, 42, &query));
        let cursor: MemoriesCursor = decode(&token).unwrap().unwrap();
        assert_eq!(cursor.position(&query).unwrap(), (now, 42));
        let other = QueryFingerprint::of(&["ctx", "", "decision"]);
        assert!(cursor.position(&other).is_err());
        // A contexts token is not a memories token, and garbage is refused.
        let contexts = encode(&ContextsCursor::after("a"));
        assert!(decode::<MemoriesCursor>(&contexts).is_err());
        assert!(decode::<ContextsCursor>("not a token!").is_err());
        assert!(decode::<ContextsCursor>("").unwrap().is_none());
    }

    #[test]
    fn fingerprint_parts_do_not_run_together() {
        assert_ne!(
            QueryFingerprint::of(&["ab", "c"]),
            QueryFingerprint::of(&["a", "bc"])
        );
    }
}
