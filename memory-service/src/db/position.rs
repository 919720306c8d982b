//! Where a keyset page starts: a memory's place in Recall's order (or an
//! export's, its reverse) against a [`Position`], as one row comparison,
//! `("memories"."created_at", "memories"."id") < ($1, $2)`.
//!
//! PostgreSQL compares a row on the index of that order, so a page starts
//! at its position. Written out as `created_at < $1 OR (created_at = $1
//! AND id < $2)`, the same test was only a filter on that index, and every
//! page read all the memories before its position first: a page 222
//! thousand memories deep into a million read and dropped 222,401 rows
//! (28 ms, against 0.14 ms).
//!
//! Expressions of their own rather than `dsl::sql`, which diesel marks as
//! unsafe to cache: the statements that use them stay prepared.

use diesel::{
    expression::{AppearsOnTable, Expression, ValidGrouping, is_aggregate},
    pg::Pg,
    prelude::*,
    query_builder::{AstPass, QueryFragment, QueryId},
    sql_types::{BigInt, Bool, Timestamptz},
};
use ninaivalaigal::schema::memories;

use crate::paging::Position;

/// Memories after `.0` in Recall's order: older, or as old with a lower id.
#[derive(Clone, Copy, Debug, QueryId)]
pub struct OlderThan(pub Position);

/// Memories after `.0` in an export's order: newer, or as new with a
/// higher id.
#[derive(Clone, Copy, Debug, QueryId)]
pub struct NewerThan(pub Position);

/// `(memories.created_at, memories.id) <operator> (created_at, id)`.
fn compare<'b>(
    position: &'b Position,
    operator: &'static str,
    mut out: AstPass<'_, 'b, Pg>,
) -> QueryResult<()> {
    out.push_sql("(");
    memories::created_at.walk_ast(out.reborrow())?;
    out.push_sql(", ");
    memories::id.walk_ast(out.reborrow())?;
    out.push_sql(operator);
    out.push_bind_param::<Timestamptz, _>(&position.created_at)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, _>(&position.id)?;
    out.push_sql(")");
    Ok(())
}

impl QueryFragment<Pg> for OlderThan {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        compare(&self.0, ") < (", out)
    }
}

impl QueryFragment<Pg> for NewerThan {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        compare(&self.0, ") > (", out)
    }
}

macro_rules! memories_predicate {
    ($name:ty) => {
        impl Expression for $name {
            type SqlType = Bool;
        }
        impl AppearsOnTable<memories::table> for $name {}
        impl<GroupBy> ValidGrouping<GroupBy> for $name {
            type IsAggregate = is_aggregate::Never;
        }
    };
}

memories_predicate!(OlderThan);
memories_predicate!(NewerThan);

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use diesel::debug_query;

    use super::*;

    fn position() -> Position {
        Position {
            created_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            id: 7,
        }
    }

    #[test]
    fn a_position_is_one_row_comparison_with_bound_values() {
        let older = memories::table
            .select(memories::id)
            .filter(OlderThan(position()));
        assert_eq!(
            debug_query::<Pg, _>(&older).to_string(),
            "SELECT \"memories\".\"id\" FROM \"memories\" \
             WHERE (\"memories\".\"created_at\", \"memories\".\"id\") < ($1, $2) \
             -- binds: [2023-11-14T22:13:20Z, 7]"
        );
        let newer = memories::table
            .select(memories::id)
            .filter(NewerThan(position()));
        assert!(
            debug_query::<Pg, _>(&newer)
                .to_string()
                .contains("(\"memories\".\"created_at\", \"memories\".\"id\") > ($1, $2)")
        );
    }

    fn stays_prepared(statement: &impl QueryFragment<Pg>) -> bool {
        statement.is_safe_to_cache_prepared(&Pg).unwrap()
    }

    #[test]
    fn statements_with_a_position_stay_prepared() {
        let older = memories::table
            .select(memories::id)
            .filter(OlderThan(position()));
        assert!(stays_prepared(&older));
        let newer = memories::table
            .select(memories::id)
            .filter(NewerThan(position()))
            .into_boxed::<Pg>();
        assert!(stays_prepared(&newer));
    }
}
