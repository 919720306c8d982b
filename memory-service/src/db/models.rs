//! Rows of the memory-service's tables.

use std::io::Write;

use chrono::{DateTime, Utc};
use diesel::{
    deserialize::{self, FromSql, FromSqlRow},
    expression::AsExpression,
    pg::{Pg, PgValue},
    prelude::*,
    serialize::{self, IsNull, Output, ToSql},
    sql_types::Json,
};
use ninaivalaigal::schema::{memories, recording_contexts};
use uuid::Uuid;

/// A row of `recording_contexts`.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = recording_contexts, check_for_backend(Pg))]
pub struct ContextRow {
    pub owner_id: i64,
    pub id: i64,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its memories, as the triggers on `memories` count them.
    pub memory_count: i64,
}

/// A context to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = recording_contexts)]
pub struct NewContext<'a> {
    pub owner_id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub visibility: &'a str,
    /// Its original time when imported; now otherwise.
    pub created_at: Option<DateTime<Utc>>,
    /// The same as `created_at` when imported; now otherwise.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A row of `memories`, without its search vector.
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = memories, check_for_backend(Pg))]
pub struct MemoryRow {
    pub id: i64,
    pub context_id: i64,
    pub memory_type: String,
    pub data: JsonText,
    pub created_at: DateTime<Utc>,
    pub request_id: Option<Uuid>,
}

/// A memory to insert. `None` leaves a column to its default: no request
/// id, and the time of the insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = memories)]
pub struct NewMemory<'a> {
    pub owner_id: i64,
    pub context_id: i64,
    pub memory_type: &'a str,
    pub data: &'a JsonText,
    pub request_id: Option<Uuid>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The text of a `json` column, byte for byte: diesel's own `json` mapping
/// parses into `serde_json::Value`, which would not keep the text exact.
#[derive(Clone, Debug, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Json)]
pub struct JsonText(pub String);

impl FromSql<Json, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        // The binary form of `json` is its text.
        Ok(Self(String::from_utf8(value.as_bytes().to_vec())?))
    }
}

impl ToSql<Json, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}
