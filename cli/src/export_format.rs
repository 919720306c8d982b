//! The export format, version 1: JSON lines (one JSON object per line,
//! UTF-8), each with a `kind`.
//!
//! - The first line is the header:
//!   `{"kind":"header","format":"ninaivalaigal-export","version":1,"exported_at":"..."}`.
//! - `{"kind":"context","name":...,"description":...,"create_time":...}`
//!   comes before the memories of that context.
//! - `{"kind":"memory","id":...,"context":...,"type":...,"data":{...},"create_time":...,"request_id":...}`:
//!   `data` exactly as stored, `id` as it was on the exporting server,
//!   `request_id` only when the memory has one.
//!
//! Times are RFC 3339 in UTC. Readers ignore fields they do not know; a
//! change that a reader must understand gets a new version, and this eM
//! refuses versions it does not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

/// The `format` of the header.
pub const FORMAT: &str = "ninaivalaigal-export";
/// The version this eM writes and reads.
pub const VERSION: u32 = 1;

/// One line of an export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// The first line.
    Header {
        format: String,
        version: u32,
        exported_at: DateTime<Utc>,
    },
    /// A context.
    Context {
        name: String,
        #[serde(default)]
        description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_time: Option<DateTime<Utc>>,
    },
    /// A memory.
    Memory {
        id: i64,
        context: String,
        #[serde(rename = "type")]
        memory_type: String,
        data: Map<String, Json>,
        create_time: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<Uuid>,
    },
}

impl Line {
    /// The header of an export made now.
    pub fn header(exported_at: DateTime<Utc>) -> Self {
        Self::Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_at,
        }
    }
}

/// The request id an import sends for a memory line without one: derived
/// from everything the line says of the memory, so importing the same line
/// again (into any account) sends the same id and stores nothing twice,
/// while two different memories never share one.
pub fn derived_request_id(
    id: i64,
    context: &str,
    memory_type: &str,
    data: &Map<String, Json>,
    create_time: DateTime<Utc>,
) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"ninaivalaigal-export-v1\0");
    hash.update(id.to_be_bytes());
    for part in [context, memory_type] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.update(create_time.to_rfc3339().as_bytes());
    hash.update(b"\0");
    hash.update(serde_json::to_string(data).unwrap_or_default().as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 8: a UUID whose bits are ours to define.
    Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_round_trip_and_read_the_documented_shape() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        let memory = Line::Memory {
            id: 7,
            context: "p".into(),
            memory_type: "note".into(),
            data: json!({"a": [1, 2.5, "x"]}).as_object().unwrap().clone(),
            create_time: time,
            request_id: None,
        };
        let text = serde_json::to_string(&memory).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"memory","id":7,"context":"p","type":"note","data":{"a":[1,2.5,"x"]},"create_time":"2023-11-14T22:13:20.123456Z"}"#
        );
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), memory);
        let header: Line = serde_json::from_str(
            r#"{"kind":"header","format":"ninaivalaigal-export","version":1,"exported_at":"2026-12-03T00:00:00Z","later":true}"#,
        )
        .unwrap();
        assert!(matches!(header, Line::Header { version: 1, .. }));
    }

    #[test]
    fn derived_ids_are_stable_and_differ_with_the_memory() {
        let time = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let data = json!({"a": 1}).as_object().unwrap().clone();
        let id = derived_request_id(7, "p", "note", &data, time);
        assert_eq!(id, derived_request_id(7, "p", "note", &data, time));
        assert_eq!(id.get_version_num(), 8);
        assert_ne!(id, derived_request_id(8, "p", "note", &data, time));
        assert_ne!(id, derived_request_id(7, "q", "note", &data, time));
        let other = json!({"a": 2}).as_object().unwrap().clone();
        assert_ne!(id, derived_request_id(7, "p", "note", &other, time));
    }
}
