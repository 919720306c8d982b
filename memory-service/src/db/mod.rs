//! The memory-service's database access. Every query on user data runs
//! through [`with_user`], inside a transaction that has first told
//! PostgreSQL who the caller is; the row-level security policies then decide
//! which rows exist for it.

pub mod contexts;
pub mod memories;
pub mod models;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use ninaivalaigal::{db::PgPool, token::AuthenticatedUser};

use crate::error::Result;

/// Runs `work` in one transaction as `user`: checks a connection out, begins,
/// sets `app.current_user_id` for this transaction only (`is_local`, so it
/// can never leak to the next user of the pooled connection), then runs
/// `work` and commits, or rolls back if it fails.
pub async fn with_user<R, F>(pool: &PgPool, user: &AuthenticatedUser, work: F) -> Result<R>
where
    R: Send + 'static,
    F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<R>> + Send + 'static,
{
    let mut pooled = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    let user_id = user.user_id.to_string();
    conn.transaction(async move |conn| {
        diesel::sql_query("SELECT set_config('app.current_user_id', $1, true)")
            .bind::<Text, _>(&user_id)
            .execute(conn)
            .await?;
        work(conn).await
    })
    .await
}
