//! The memory-service's database access. Every query on user data runs
//! through [`with_user`] (or [`with_user_statement`], for a transaction of
//! one statement), inside a transaction that has first told PostgreSQL who
//! the caller is and how long it may take; the row-level security policies
//! then decide which rows exist for it.

pub mod contexts;
pub mod deployment;
pub mod memories;
pub mod models;
pub mod page;
pub mod position;
pub mod remember;
pub mod terms;
pub mod usage;
pub mod writer;

use std::time::Duration;

use diesel::{
    QueryResult,
    connection::TransactionDepthChange,
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    TransactionManager,
};
use futures::future::BoxFuture;
use ninaivalaigal::db::PgPool;
use tokio::time::Instant;

pub use deployment::Deployment;

use crate::{
    error::{Error, Result},
    scope::RequestScope,
};

/// A connection inside a user transaction, shared so that the statements
/// that open the transaction and the first statement of its work reach
/// PostgreSQL in one round trip: diesel-async pipelines the queries of
/// futures polled together on a `&AsyncPgConnection`, in the order they
/// are first polled.
pub type Conn<'c> = &'c AsyncPgConnection;

/// Runs `work` in one transaction as the scope's user, within its deadline:
/// checks a connection out, begins and sets `app.current_user_id` and
/// `statement_timeout` for this transaction only (`SET LOCAL`, so neither
/// can leak to the next user of the pooled connection), sending them with
/// `work`'s first statement, then commits, or rolls back if `work` fails.
///
/// Each statement may run for the time left when the transaction began
/// (less a reserve for answering); a statement cancelled by it is
/// DEADLINE_EXCEEDED. Work still running at the deadline is abandoned by
/// the server frame, and its statement ends at its timeout.
pub async fn with_user<R, F>(pool: &PgPool, scope: &RequestScope, work: F) -> Result<R>
where
    R: Send + 'static,
    F: for<'c, 'a> FnOnce(&'c mut Conn<'a>) -> BoxFuture<'c, Result<R>> + Send + 'static,
{
    let mut pooled = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    // Measured after the checkout, which may have waited.
    let budget = scope.statement_budget();
    let begin = format!(
        "BEGIN; {}",
        transaction_settings(scope.user.user_id, budget)
    );
    let timed_out_after = Instant::now() + budget;
    in_transaction(conn, &begin, work, Ending::AfterWork)
        .await
        .map_err(|error| deadline_exceeded_if_timed_out(error, timed_out_after))
}

/// Runs `statement`, which sends exactly one statement, as the scope's user
/// in a transaction of its own, as [`with_user`] does, with its COMMIT sent
/// in the same round trip: BEGIN and the settings, the statement and COMMIT
/// reach PostgreSQL together. Should the statement fail, COMMIT finds the
/// transaction aborted and ends it as a rollback.
///
/// On a single server the statement is planned once per connection
/// (`PLAN_ONCE`, below).
///
/// COMMIT is a prepared statement too ([`Commit`]), so it reaches
/// PostgreSQL after the statement even when the statement is not prepared
/// on this connection yet: diesel-async holds the connection's statement
/// cache while it prepares one (a round trip of its own), and COMMIT waits
/// for the cache. Were it ever sent first, the statement would run after
/// the transaction, without a user, and row-level security would hide or
/// refuse every row: a wrong answer, never another user's data. Every test
/// that runs a statement first on a fresh connection checks the order.
pub async fn with_user_statement<R, F>(
    pool: &PgPool,
    deployment: Deployment,
    scope: &RequestScope,
    statement: F,
) -> Result<R>
where
    R: Send + 'static,
    F: for<'c, 'a> FnOnce(&'c mut Conn<'a>) -> BoxFuture<'c, Result<R>> + Send + 'static,
{
    let mut pooled = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    let budget = scope.statement_budget();
    let plan_once = if deployment.plans_once() {
        PLAN_ONCE
    } else {
        ""
    };
    let begin = format!(
        "BEGIN; {}{plan_once}",
        transaction_settings(scope.user.user_id, budget)
    );
    let timed_out_after = Instant::now() + budget;
    in_transaction(conn, &begin, statement, Ending::Pipelined)
        .await
        .map_err(|error| deadline_exceeded_if_timed_out(error, timed_out_after))
}

/// Keeps a prepared statement's one generic plan for this transaction,
/// rather than letting PostgreSQL plan it anew for its values on every
/// call. PostgreSQL does that for as long as the plans for the values look
/// cheaper than the generic one, and a page size given as `LIMIT $n`, which
/// a generic plan must guess at (a tenth of the rows), makes them look
/// cheaper forever: planning was half of PostgreSQL's CPU in a Recall
/// profile (docs/performance.md). Only for the hot statements of
/// [`with_user_statement`], whose generic plans are the custom ones
/// without the guess; a text query's walk needs the plan for its values
/// (`db::terms`). Transaction-local, like the settings. Not on Citus,
/// which cannot make a generic plan of Recall's page
/// ([`Deployment::plans_once`]).
const PLAN_ONCE: &str = "; SET LOCAL plan_cache_mode = force_generic_plan";

/// The statements that open every user transaction: who the caller is and
/// how long each statement may run, both transaction-local.
///
/// `SET LOCAL` rather than `set_config(..., true)`: it means the same on one
/// server and behind a transaction-mode pooler, and it is the form Citus
/// forwards to its workers (with `citus.propagate_set_commands = 'local'`),
/// where the row-level security policies of the shards read it; a
/// `set_config` call stays on the coordinator, and the workers see no user.
/// `SET` takes no bound parameters, so the values are formatted into the
/// text, from an `i64` (the verified token's id) and a number of
/// milliseconds: digits and a sign, never text a client chose.
pub fn transaction_settings(user_id: i64, statement_budget: Duration) -> String {
    let timeout_ms = statement_budget.as_millis().clamp(1, i32::MAX as u128);
    format!(
        "SET LOCAL app.current_user_id = '{user_id}'; SET LOCAL statement_timeout = {timeout_ms}"
    )
}

/// Runs `work` as `user_id` in one read-only REPEATABLE READ transaction:
/// every statement sees the same snapshot, so an export paged through many
/// statements is consistent however long it takes. Each statement may run
/// for `budget` (the export's own time limit; the caller also ends the
/// whole transaction when it passes).
pub async fn with_user_snapshot<R, F>(
    pool: &PgPool,
    user_id: i64,
    budget: Duration,
    work: F,
) -> Result<R>
where
    R: Send + 'static,
    F: for<'c, 'a> FnOnce(&'c mut Conn<'a>) -> BoxFuture<'c, Result<R>> + Send + 'static,
{
    let mut pooled = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    let begin = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {}",
        transaction_settings(user_id, budget)
    );
    let timed_out_after = Instant::now() + budget;
    in_transaction(conn, &begin, work, Ending::AfterWork)
        .await
        .map_err(|error| deadline_exceeded_if_timed_out(error, timed_out_after))
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// COMMIT once the work is done, or ROLLBACK when it failed.
    AfterWork,
    /// COMMIT sent right behind the work's one statement.
    Pipelined,
}

/// `COMMIT` as a prepared statement with a static query id: diesel-async
/// prepares it once per connection and caches it, and it takes its turn
/// at the statement cache behind the statement queued before it.
#[derive(Clone, Copy, Debug, QueryId)]
struct Commit;

impl QueryFragment<Pg> for Commit {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("COMMIT");
        Ok(())
    }
}

/// Runs `work` in a transaction that `begin` opens (`BEGIN` and the
/// transaction's settings, one simple query) and ends it as `ending` says,
/// as `AsyncConnection::transaction` does. `begin` and `work`'s first
/// statement are sent together: one round trip fewer.
///
/// The transaction goes through diesel-async's transaction manager, never
/// around it. It is recorded as open before anything is sent (where
/// `begin_transaction_sql` records it once its `BEGIN` has returned), so a
/// connection whose future is dropped at any point of the transaction (a
/// cancelled request) counts as broken, and bb8 discards it instead of
/// handing it, still inside this user's transaction, to the next request.
/// That is what keeps one user's transaction (and its `SET LOCAL` user)
/// from reaching another.
///
/// `work`'s statements follow `begin` on the wire, so they run inside the
/// transaction it opens. Should `begin` fail, they run without a user, and
/// every row-level security policy fails closed on them; their outcome is
/// dropped, and so is the connection.
async fn in_transaction<R, F>(
    conn: &mut AsyncPgConnection,
    begin: &str,
    work: F,
    ending: Ending,
) -> Result<R>
where
    F: for<'c, 'a> FnOnce(&'c mut Conn<'a>) -> BoxFuture<'c, Result<R>>,
{
    type Manager = AnsiTransactionManager;
    let status =
        <Manager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(conn);
    let state = status.transaction_state()?;
    if state.transaction_depth().is_some() {
        // bb8 hands out no connection still inside a transaction; this one
        // would nest ours as a savepoint, under someone else's settings.
        status.set_in_error();
        return Err(DieselError::AlreadyInTransaction.into());
    }
    state.change_transaction_depth(TransactionDepthChange::IncreaseDepth)?;
    let shared: Conn<'_> = conn;
    let (mut for_begin, mut for_work, mut for_commit) = (shared, shared, shared);
    // `join!` polls in order: `begin` is queued before `work`'s first
    // statement, and that before a pipelined COMMIT.
    let (began, outcome, committed) = match ending {
        Ending::AfterWork => {
            let (began, outcome) =
                futures::join!(for_begin.batch_execute(begin), work(&mut for_work));
            (began, outcome, None)
        }
        Ending::Pipelined => {
            let (began, outcome, committed) = futures::join!(
                for_begin.batch_execute(begin),
                work(&mut for_work),
                Commit.execute(&mut for_commit),
            );
            (began, outcome, Some(committed))
        }
    };
    if let Err(error) = began {
        // `BEGIN` may have succeeded and a later statement of the string
        // failed: the server's state is unknown, so the connection goes.
        set_broken(conn);
        return Err(error.into());
    }
    match committed {
        None => match outcome {
            Ok(value) => {
                Manager::commit_transaction(conn).await?;
                Ok(value)
            }
            Err(work_error) => match Manager::rollback_transaction(conn).await {
                // The original error says more than a rollback that found
                // the manager broken by it.
                Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(work_error),
                Err(rollback_error) => Err(rollback_error.into()),
            },
        },
        Some(Ok(_)) => {
            // Committed, or rolled back when the statement had failed.
            <Manager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(
                conn,
            )
            .transaction_state()?
            .change_transaction_depth(TransactionDepthChange::DecreaseDepth)?;
            outcome
        }
        Some(Err(commit_error)) => {
            // Not committed. PostgreSQL rolls back a COMMIT that fails, but
            // a connection that failed leaves its state unknown: it goes.
            set_broken(conn);
            Err(commit_error.into())
        }
    }
}

/// Marks `conn` broken: bb8 discards it instead of reusing it.
fn set_broken(conn: &mut AsyncPgConnection) {
    <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(conn)
        .set_in_error();
}

/// PostgreSQL's message for SQLSTATE 57014 raised by `statement_timeout`
/// (servers that send English messages, as Debian's default locale does).
const STATEMENT_TIMEOUT_MESSAGE: &str = "canceling statement due to statement timeout";

/// A statement cancelled by `statement_timeout` as DEADLINE_EXCEEDED.
/// diesel does not pass the SQLSTATE (57014) on, so two signs are taken:
/// PostgreSQL's own message, and time. No statement can have timed out
/// before `timed_out_after` (its timer starts when PostgreSQL receives it),
/// and a database error past that point comes when the request has run out
/// of time anyway. Time alone is not enough: PostgreSQL checks its timers
/// against the wall clock, so a clock stepped forward fires them early.
fn deadline_exceeded_if_timed_out(error: Error, timed_out_after: Instant) -> Error {
    match error {
        Error::Database(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info))
            if info.message() == STATEMENT_TIMEOUT_MESSAGE || Instant::now() >= timed_out_after =>
        {
            tracing::info!(
                detail = info.message(),
                "database statement ran out of time"
            );
            Error::DeadlineExceeded(
                "the database did not finish this request within its deadline; retry with a longer deadline or a narrower request".into(),
            )
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_transaction_local_and_formatted_from_numbers() {
        let ms = Duration::from_millis;
        assert_eq!(
            transaction_settings(42, ms(29_900)),
            "SET LOCAL app.current_user_id = '42'; SET LOCAL statement_timeout = 29900"
        );
        // Never 0, which PostgreSQL reads as "no timeout"; never past its maximum.
        assert!(transaction_settings(1, Duration::ZERO).ends_with("statement_timeout = 1"));
        assert!(
            transaction_settings(i64::MIN, Duration::from_secs(u64::MAX))
                .starts_with("SET LOCAL app.current_user_id = '-9223372036854775808';")
        );
        assert!(
            transaction_settings(1, Duration::from_secs(u64::MAX))
                .ends_with(&format!("statement_timeout = {}", i32::MAX))
        );
    }

    fn unknown_database_error(message: &str) -> Error {
        Error::Database(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn a_database_error_after_the_statement_budget_is_deadline_exceeded() {
        let spent = Instant::now() - Duration::from_millis(1);
        let error = deadline_exceeded_if_timed_out(unknown_database_error("anything"), spent);
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(
            status.message().contains("deadline"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_statement_timeout_is_deadline_exceeded_even_when_it_fired_early() {
        // A wall clock stepped forward makes PostgreSQL fire the timer early.
        let later = Instant::now() + Duration::from_secs(60);
        let error = deadline_exceeded_if_timed_out(
            unknown_database_error(STATEMENT_TIMEOUT_MESSAGE),
            later,
        );
        assert_eq!(
            tonic::Status::from(error).code(),
            tonic::Code::DeadlineExceeded
        );
    }

    #[test]
    fn errors_before_the_budget_is_spent_stay_what_they_are() {
        let later = Instant::now() + Duration::from_secs(60);
        let error =
            deadline_exceeded_if_timed_out(unknown_database_error("division by zero"), later);
        assert_eq!(tonic::Status::from(error).code(), tonic::Code::Internal);
        let spent = Instant::now() - Duration::from_millis(1);
        let not_found = Error::Database(DieselError::NotFound);
        let error = deadline_exceeded_if_timed_out(not_found, spent);
        assert_eq!(tonic::Status::from(error).code(), tonic::Code::NotFound);
    }
}
