//! Remember's usual case in one statement: lock the caller's usage row,
//! find the context, check the quota and insert, in a single round trip
//! with the transaction's BEGIN and COMMIT (`db::with_user_statement`).
//!
//! The statement stores nothing, and returns no row, whenever the usual
//! case does not hold: no such context, none recording, over the quota, or
//! a request id stored before. `db::writer` then takes the write step by
//! step in a transaction of its own and gives the answer it always gave, so
//! this statement only needs to be right when it stores, and to store
//! only what the step-by-step path would store. Citus cannot run it
//! (`db::Deployment`): there every Remember takes the step-by-step path.
//!
//! As PostgreSQL receives it (a prepared statement, cached per
//! connection), with `$1` the verified token's user id, `$2` the context's
//! name or NULL, `$3` true when no name is given (the recording context),
//! `$4` and `$5` the quota's most memories and bytes, `$6` the memory's
//! bytes of JSON, `$7` its type, `$8` its JSON and `$9` its request id or
//! NULL:
//!
//! ```sql
#![doc = include_str!("remember.sql")]
//! ```
//!
//! - `usage` is `db::usage::lock` (the no-op upsert that locks the row and
//!   reads the latest committed counts); it runs before anything else
//!   waits on it, so writers of one user take turns as before.
//! - `context` joins `usage`, so its row is locked only after the usage
//!   row is: the order of the step-by-step path (usage, then the context
//!   through the foreign key check), so no new deadlock. The lock makes
//!   PostgreSQL recheck a context changed while this statement waited for
//!   the usage row (its snapshot is older than that wait): one deleted,
//!   renamed or no longer recording meanwhile is skipped, and the fallback
//!   answers as the step-by-step path, which looks after the wait, would.
//!   `FOR SHARE`, not the foreign key's `FOR KEY SHARE`: that one is not
//!   rechecked after an update that leaves the keys alone, such as
//!   `is_active` changing. It holds off other updates of the context
//!   (StopRecording, UpdateContext) until this transaction ends, as
//!   StartRecording's `lock_all` is held off already.
//! - The quota test is `Quota::admit`'s, written so that it cannot
//!   overflow: `bytes <= max_bytes - new` (`max_bytes >= 1`, `new >= 0`).
//! - The insert's `owner_id` is the usage row's, that is `$1`; row-level
//!   security still checks every row against `app.current_user_id`.
//! - The statement-level trigger on `memories` (`memory_usage_count`)
//!   updates the usage row after the statement, as it does after the
//!   step-by-step insert.

use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{BigInt, Bool, Json, Nullable, Text, Untyped},
};
use diesel_async::RunQueryDsl;

use super::Conn;
use uuid::Uuid;

use super::models::{JsonText, MemoryRow};
use crate::{
    error::Result,
    quota::Quota,
    writes::{Target, Write},
};

/// The statement, its parameters numbered in order.
const SQL: &str = include_str!("remember.sql");

/// One Remember to store in one statement.
#[derive(Debug)]
pub struct RememberOne<'a> {
    /// The verified token's user id.
    owner_id: i64,
    /// The context's name; `None` for the recording one.
    context: Option<&'a str>,
    /// True when the memory goes to the recording context.
    recording: bool,
    quota: Quota,
    /// Bytes of the memory's JSON.
    bytes: i64,
    memory_type: &'a str,
    data: &'a JsonText,
    request_id: Option<Uuid>,
}

/// The stored row and its context's name.
#[derive(QueryableByName)]
struct Stored {
    #[diesel(embed)]
    memory: MemoryRow,
    #[diesel(sql_type = Text)]
    context_name: String,
}

impl<'a> RememberOne<'a> {
    /// The statement for `write` by `owner_id` (the verified token's user).
    pub fn new(owner_id: i64, quota: Quota, write: &'a Write) -> Self {
        let context = match &write.target {
            Target::Named(name) => Some(name.as_str()),
            Target::Recording => None,
        };
        Self {
            owner_id,
            context,
            recording: context.is_none(),
            quota,
            bytes: write.bytes,
            memory_type: write.memory_type.as_str(),
            data: &write.data,
            request_id: write.request_id.map(|id| id.get()),
        }
    }

    /// Stores the memory when the usual case holds; `None` when it stored
    /// nothing (see the module's comment).
    pub async fn run(&self, conn: &mut Conn<'_>) -> Result<Option<(MemoryRow, String)>> {
        let stored: Option<Stored> = self.get_result(conn).await.optional()?;
        Ok(stored.map(|stored| (stored.memory, stored.context_name)))
    }
}

impl QueryFragment<Pg> for RememberOne<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // diesel numbers the parameters in the order they are pushed, so
        // the text PostgreSQL gets is the file's when its `$n` are in order.
        let mut pieces = SQL.split('$');
        out.push_sql(pieces.next().unwrap_or_default());
        for (index, piece) in pieces.enumerate() {
            let (number, rest) = piece.split_at(
                piece
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(piece.len()),
            );
            if number.parse() != Ok(index + 1) {
                return Err(diesel::result::Error::QueryBuilderError(
                    format!("remember.sql: ${number} where ${} belongs", index + 1).into(),
                ));
            }
            match index + 1 {
                1 => out.push_bind_param::<BigInt, _>(&self.owner_id)?,
                2 => out.push_bind_param::<Nullable<Text>, _>(&self.context)?,
                3 => out.push_bind_param::<Bool, _>(&self.recording)?,
                4 => out.push_bind_param::<BigInt, _>(&self.quota.max_memories)?,
                5 => out.push_bind_param::<BigInt, _>(&self.quota.max_bytes)?,
                6 => out.push_bind_param::<BigInt, _>(&self.bytes)?,
                7 => out.push_bind_param::<Text, _>(self.memory_type)?,
                8 => out.push_bind_param::<Json, _>(self.data)?,
                9 => {
                    out.push_bind_param::<Nullable<diesel::sql_types::Uuid>, _>(&self.request_id)?
                }
                _ => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("remember.sql has no parameter ${number}").into(),
                    ));
                }
            }
            out.push_sql(rest);
        }
        Ok(())
    }
}

/// One fixed statement text: prepared once per connection and cached.
impl QueryId for RememberOne<'_> {
    type QueryId = RememberOne<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RememberOne<'_> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;

    use super::*;

    #[test]
    fn postgresql_gets_the_statement_of_the_file() {
        let write = Write::remember(
            ninaivalaigal::memory_v1::RememberRequest {
                context: "work".into(),
                r#type: "note".into(),
                data: Some(ninaivalaigal::json::text_to_struct("{}").unwrap()),
                request_id: String::new(),
            },
            100,
        )
        .unwrap();
        let one = RememberOne::new(7, Quota::new(10, 100), &write);
        let shown = debug_query::<Pg, _>(&one).to_string();
        assert!(shown.starts_with(SQL), "{shown}");
        assert!(
            shown.ends_with(
                r#"binds: [7, Some("work"), false, 10, 100, 2, "note", JsonText("{}"), None]"#
            ),
            "{shown}"
        );
        assert_eq!(SQL.matches('$').count(), 9);
    }
}
