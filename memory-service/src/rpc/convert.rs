//! Rows to protobuf messages.

use chrono::{DateTime, Utc};
use ninaivalaigal::{json::text_to_struct, memory_v1 as pb, timestamp::to_timestamp};
use prost::Message;
use prost_types::Timestamp;

use crate::{
    budget::ByteBudget,
    db::{
        models::{ContextRow, MemoryRow},
        writer::Stored,
    },
    error::Error,
};

/// A stored time as a `Timestamp`. One the type cannot hold is our fault
/// (the row was written outside this service), so INTERNAL.
fn stored_time(
    what: &str,
    id: i64,
    field: &'static str,
    time: DateTime<Utc>,
) -> Result<Timestamp, Error> {
    to_timestamp(field, time).map_err(|error| Error::Internal(format!("{what} {id}: {error}")))
}

pub fn context(row: ContextRow) -> Result<pb::Context, Error> {
    Ok(pb::Context {
        create_time: Some(stored_time(
            "context",
            row.id,
            "create_time",
            row.created_at,
        )?),
        update_time: Some(stored_time(
            "context",
            row.id,
            "update_time",
            row.updated_at,
        )?),
        name: row.name,
        description: row.description,
        // The schema allows only 'private' for now.
        visibility: pb::Visibility::Private.into(),
        recording: row.is_active,
        memory_count: row.memory_count,
    })
}

pub fn memory(row: MemoryRow, context: String) -> Result<pb::Memory, Error> {
    let data = text_to_struct(&row.data.0).map_err(|error| {
        Error::Internal(format!(
            "memory {} holds JSON it cannot return: {error}",
            row.id
        ))
    })?;
    Ok(pb::Memory {
        create_time: Some(stored_time(
            "memory",
            row.id,
            "create_time",
            row.created_at,
        )?),
        id: row.id,
        context,
        r#type: row.memory_type,
        data: Some(data),
        request_id: row
            .request_id
            .map(|id| id.hyphenated().to_string())
            .unwrap_or_default(),
    })
}

/// Where a memory of a batch was stored, without its data.
pub fn stored(stored: Stored) -> Result<pb::StoredMemory, Error> {
    Ok(pb::StoredMemory {
        create_time: Some(stored_time(
            "memory",
            stored.row.id,
            "create_time",
            stored.row.created_at,
        )?),
        id: stored.row.id,
        context: stored.context,
        already_stored: stored.already_stored,
    })
}

/// The memories of `rows`, in order, while their encoded size fits in
/// `byte_limit` (at least one): converted one by one, so a page cut short
/// converts nothing past its end.
pub fn page(rows: Vec<(MemoryRow, String)>, byte_limit: usize) -> Result<Vec<pb::Memory>, Error> {
    let mut budget = ByteBudget::new(byte_limit);
    let mut memories = Vec::with_capacity(rows.len());
    for (row, context) in rows {
        let memory = memory(row, context)?;
        // As a repeated field of the response: a tag byte and a length prefix.
        let len = memory.encoded_len();
        if !budget.take(1 + prost::length_delimiter_len(len) + len) {
            break;
        }
        memories.push(memory);
    }
    Ok(memories)
}
