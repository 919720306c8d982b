//! Rows to protobuf messages, and protobuf times to typed times.

use chrono::{DateTime, Utc};
use ninaivalaigal::{json::text_to_struct, memory_v1 as pb};
use prost_types::Timestamp;

use crate::{
    db::models::{ContextRow, MemoryRow},
    error::Error,
};

/// The earliest and latest times a `Timestamp` may hold (0001-01-01 and
/// 9999-12-31T23:59:59Z, as its documentation says).
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A request's optional time, checked.
pub fn time(field: &str, value: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(value) = value else { return Ok(None) };
    let nanos = u32::try_from(value.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000);
    match nanos {
        Some(nanos) if (MIN_SECONDS..=MAX_SECONDS).contains(&value.seconds) => {
            DateTime::from_timestamp(value.seconds, nanos)
                .map(Some)
                .ok_or_else(|| out_of_range(field))
        }
        _ => Err(out_of_range(field)),
    }
}

fn out_of_range(field: &str) -> Error {
    Error::InvalidArgument(format!(
        "{field} is not a valid time (0001-01-01 to 9999-12-31, nanos 0 to 999999999)"
    ))
}

pub fn context(row: ContextRow, memory_count: i64) -> pb::Context {
    pb::Context {
        name: row.name,
        description: row.description,
        // The schema allows only 'private' for now.
        visibility: pb::Visibility::Private.into(),
        recording: row.is_active,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        memory_count,
    }
}

pub fn memory(row: MemoryRow, context: String) -> Result<pb::Memory, Error> {
    let data = text_to_struct(&row.data.0).map_err(|error| {
        Error::Internal(format!(
            "memory {} holds JSON it cannot return: {error}",
            row.id
        ))
    })?;
    Ok(pb::Memory {
        id: row.id,
        context,
        r#type: row.memory_type,
        data: Some(data),
        create_time: Some(timestamp(row.created_at)),
    })
}
