//! What kind of PostgreSQL the memory-service talks to, which decides how a
//! few hot statements are sent. The answers are the same; only the way to
//! them differs.

use diesel::{QueryableByName, sql_types::Bool};
use diesel_async::RunQueryDsl;
use ninaivalaigal::db::PgPool;

use crate::error::Result;

/// Where the memory-service's statements run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// One PostgreSQL server (with or without replicas).
    SingleServer,
    /// A Citus cluster (docs/scaling.md), which plans some statements
    /// differently:
    /// - it takes a row lock (`FOR SHARE`) only in a query it routes to one
    ///   shard, and plans data-modifying CTEs one at a time, so Remember's
    ///   one statement (`db::remember`) fails there;
    /// - it cannot make a generic plan of Recall's page statement ("could
    ///   not create distributed plan"), so that statement keeps the plans
    ///   PostgreSQL makes for its values (`db::PLAN_ONCE`).
    Citus,
}

impl Deployment {
    /// Asks the catalog, which every role may read, whether the `citus`
    /// extension is installed.
    pub async fn detect(pool: &PgPool) -> Result<Self> {
        #[derive(QueryableByName)]
        struct Citus {
            #[diesel(sql_type = Bool)]
            installed: bool,
        }
        let mut conn = pool.get().await?;
        let citus: Citus = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS installed",
        )
        .get_result(&mut *conn)
        .await?;
        Ok(if citus.installed {
            Self::Citus
        } else {
            Self::SingleServer
        })
    }

    /// Whether Remember's usual case runs as one statement
    /// (`db::remember::RememberOne`); otherwise it takes the step-by-step
    /// path, whose statements each name the owner's shard.
    pub fn remembers_in_one_statement(self) -> bool {
        self == Self::SingleServer
    }

    /// Whether a one-statement transaction keeps its statement's generic
    /// plan (`db::PLAN_ONCE`).
    pub fn plans_once(self) -> bool {
        self == Self::SingleServer
    }
}
