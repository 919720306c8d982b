//! The auth-service's database access: rows (of the kernel's
//! `ninaivalaigal::schema`) and the queries the handlers use. The auth role's
//! policies let it see every row of its own tables (it must find accounts
//! before anyone is authenticated), so these queries need no per-transaction
//! user setting.

pub mod audit;
pub mod models;
pub mod sessions;
pub mod users;

use ninaivalaigal::db::{PgPool, PooledConnection};

use crate::error::Result;

/// Checks a connection out of the pool (UNAVAILABLE when none comes in time).
pub async fn connection(pool: &PgPool) -> Result<PooledConnection<'_>> {
    Ok(pool.get().await?)
}
