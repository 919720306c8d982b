//! Database plumbing shared by the services and the test harness: the
//! connection pool, TLS to the database, the embedded migrations, and the
//! database settings.

mod tls;

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{
    AsyncPgConnection,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod, bb8,
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use tls::{DatabaseTls, SslMode};

/// The schema migrations kept in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of async Postgres connections.
pub type PgPool = bb8::Pool<AsyncPgConnection>;
/// A connection checked out of [`PgPool`].
pub type PooledConnection<'a> = bb8::PooledConnection<'a, AsyncPgConnection>;

/// A `postgres://` URL. Parsing checks the shape up front so a typo stops
/// start-up with a clear message; `Display` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The full URL, password included. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("must start with postgres:// or postgresql://")?;
        let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let (host, database) = host_part
            .split_once('/')
            .ok_or("must name a database: postgres://USER:PASSWORD@HOST:PORT/DATABASE")?;
        if host.is_empty() || database.split('?').next().is_none_or(str::is_empty) {
            return Err(
                "must name a host and a database: postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                    .into(),
            );
        }
        SslMode::of_url(url)?;
        Ok(Self(url.to_owned()))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:secret@host/db -> postgres://user:***@host/db
        match self.0.split_once("://").and_then(|(scheme, rest)| {
            let (credentials, host) = rest.rsplit_once('@')?;
            let user = credentials.split(':').next().unwrap_or_default();
            Some(format!("{scheme}://{user}:***@{host}"))
        }) {
            Some(redacted) => f.write_str(&redacted),
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Builds a connection pool. Connections are opened lazily, so this does not
/// fail when the database is down; requests then get UNAVAILABLE. They are
/// opened with `tls`, as the URL's `sslmode` asks.
///
/// A connection is checked before it is handed out, without a round trip:
/// one whose server side has gone away while it sat in the pool (the server
/// restarted, or an administrator terminated the backend) is discarded and
/// another one taken or opened, so no request is given a dead connection
/// that the pool could have known was dead.
pub fn build_pool(
    url: &DatabaseUrl,
    tls: DatabaseTls,
    max_size: u32,
    connect_timeout: Duration,
) -> PgPool {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let tls = tls.clone();
        let url = url.to_owned();
        Box::pin(async move { tls.connect(&url).await })
    });
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        // Closed socket, or a transaction left open or cut off half-way.
        let broken = conn.is_broken();
        Box::pin(async move {
            if broken {
                Err(DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection,
                    Box::new("the pooled connection was closed by the server".to_owned()),
                ))
            } else {
                Ok(())
            }
        })
    }));
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url.expose(), config);
    bb8::Pool::builder()
        .max_size(max_size)
        .connection_timeout(connect_timeout)
        .test_on_check_out(true)
        .build_unchecked(manager)
}

/// Publishes the pool's state in `metrics`, read from bb8 at each scrape:
/// connections open and idle, the configured maximum, how the checkouts
/// went (at once, after waiting, or timed out) and the total time spent
/// waiting for a connection. bb8 measures that wait inside `Pool::get`,
/// that is at every place a connection is taken, so no call site can be
/// left out; rate(wait) / rate(waited + timed out) is the mean wait of
/// those that waited.
pub fn observe_pool(pool: &PgPool, max_size: u32, metrics: &crate::metrics::Metrics) {
    const CONNECTIONS: &str = "ninaivalaigal_db_pool_connections";
    const MAX: &str = "ninaivalaigal_db_pool_max_connections";
    const CHECKOUTS: &str = "ninaivalaigal_db_pool_checkouts_total";
    const WAITING: &str = "ninaivalaigal_db_pool_waiting";
    // A counter holds integers: microseconds keep the sum exact.
    const WAIT: &str = "ninaivalaigal_db_pool_wait_microseconds_total";
    metrics.describe(
        CONNECTIONS,
        "Database connections held by the pool, by state (idle or in use).",
    );
    metrics.describe(
        MAX,
        "Most database connections the pool may hold (NINAIVALAIGAL_DB_POOL_SIZE).",
    );
    metrics.describe(CHECKOUTS, "Connections taken from the pool, by outcome: at once, after waiting, or timed out (UNAVAILABLE).");
    metrics.describe(WAITING, "Requests waiting for a pooled connection now.");
    metrics.describe(
        WAIT,
        "Microseconds spent waiting for pooled connections, all checkouts together.",
    );
    let idle = metrics.gauge(CONNECTIONS, &[("state", "idle")]);
    let in_use = metrics.gauge(CONNECTIONS, &[("state", "in_use")]);
    metrics.gauge(MAX, &[]).set(f64::from(max_size));
    let direct = metrics.counter(CHECKOUTS, &[("outcome", "direct")]);
    let waited = metrics.counter(CHECKOUTS, &[("outcome", "waited")]);
    let timed_out = metrics.counter(CHECKOUTS, &[("outcome", "timed_out")]);
    let waiting = metrics.gauge(WAITING, &[]);
    let wait = metrics.counter(WAIT, &[]);
    let pool = pool.clone();
    metrics.on_scrape(move || {
        let state = pool.state();
        let stats = &state.statistics;
        idle.set(f64::from(state.idle_connections));
        in_use.set(f64::from(
            state.connections.saturating_sub(state.idle_connections),
        ));
        direct.absolute(stats.get_direct);
        waited.absolute(stats.get_waited);
        timed_out.absolute(stats.get_timed_out);
        let done = stats.get_direct + stats.get_waited + stats.get_timed_out;
        waiting.set(stats.get_started.saturating_sub(done) as f64);
        wait.absolute(u64::try_from(stats.get_wait_time.as_micros()).unwrap_or(u64::MAX));
    });
}

/// Messages with which PostgreSQL ends a session it is shutting down or
/// restarting (SQLSTATE 57P01 `admin_shutdown`, 57P02 `crash_shutdown`,
/// 57P03 `cannot_connect_now`), as the server sends them with its default
/// `lc_messages` (English). diesel does not pass the SQLSTATE on, so the
/// message is all there is to go by.
const SERVER_GOING_AWAY: &[&str] = &[
    "terminating connection due to administrator command",
    "terminating connection due to unexpected postmaster exit",
    "terminating connection because of crash of another server process",
    "terminating connection due to idle-session timeout",
    "terminating connection due to idle-in-transaction timeout",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
];

/// True when `error` means the connection to the database was lost (closed,
/// cut off, or ended by a server that is shutting down) rather than that the
/// query was wrong: the request did not complete for a reason outside it,
/// and may be retried once the database is back. Both services answer these
/// with UNAVAILABLE.
///
/// diesel-async reports a connection that tokio-postgres found closed or
/// could not talk over as `UnableToSendCommand` ("connection closed", "error
/// communicating with the server"), and a FATAL from the server as `Unknown`
/// with the server's message.
pub fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            let message = info.message();
            message.starts_with("connection closed")
                || message.starts_with("error communicating with the server")
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => SERVER_GOING_AWAY
            .iter()
            .any(|going_away| info.message().starts_with(going_away)),
        _ => false,
    }
}

/// Applies every pending migration and returns the versions it applied.
/// Connect as the role that owns the tables. Safe to run repeatedly. TLS as
/// the URL's `sslmode` asks, without a CA of its own: see
/// [`run_migrations_with`].
pub async fn run_migrations(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    run_migrations_with(url, &DatabaseTls::new(url, None)?).await
}

/// [`run_migrations`], connecting with `tls`.
pub async fn run_migrations_with(
    url: &DatabaseUrl,
    tls: &DatabaseTls,
) -> anyhow::Result<Vec<String>> {
    let conn = tls
        .connect(url.expose())
        .await
        .map_err(|error| anyhow::anyhow!("cannot connect to {url}: {error}"))?;
    // diesel's migration harness is synchronous; run it off the async runtime.
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|error| anyhow::anyhow!("migration failed: {error}"))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await?
}

/// The version of the newest migration compiled into this binary.
pub fn expected_schema_version() -> anyhow::Result<String> {
    use diesel::migration::MigrationSource;
    MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|error| anyhow::anyhow!("cannot read the embedded migrations: {error}"))?
        .iter()
        .map(|migration| migration.name().version().to_string())
        .max()
        .ok_or_else(|| anyhow::anyhow!("no migrations are embedded"))
}

/// Ok when a pooled connection answers and the database has every
/// migration this binary was built with: what both services' readiness
/// checks need from their database.
pub async fn check_ready(pool: &PgPool, expected_version: &str) -> anyhow::Result<()> {
    let mut conn = pool
        .get()
        .await
        .map_err(|error| anyhow::anyhow!("no database connection: {error}"))?;
    check_schema_version(&mut conn, expected_version).await
}

/// Ok when the database has every migration this binary was built with, so
/// that a service never serves against an older schema (for example before
/// a deployment's migration job has run). A newer schema is fine: migrations
/// only add what older binaries can ignore.
pub async fn check_schema_version(
    conn: &mut AsyncPgConnection,
    expected: &str,
) -> anyhow::Result<()> {
    use diesel::{OptionalExtension, QueryableByName, sql_types::Text};
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Applied {
        #[diesel(sql_type = Text)]
        #[allow(dead_code)]
        version: String,
    }
    let applied: Option<Applied> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations WHERE version = $1")
            .bind::<Text, _>(expected)
            .get_result(conn)
            .await
            .optional()
            .map_err(|error| anyhow::anyhow!("cannot read the schema version: {error}"))?;
    match applied {
        Some(_) => Ok(()),
        None => anyhow::bail!(
            "the database lacks migration {expected}: run ninaivalaigal-migrate (or the migration job) first"
        ),
    }
}

/// Database settings that every service takes the same way.
#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseSettings {
    /// Postgres URL of the service's own login role (which owns no table and
    /// lacks BYPASSRLS).
    #[arg(long, env = "NINAIVALAIGAL_DATABASE_URL", hide_env_values = true)]
    pub database_url: DatabaseUrl,
    /// Maximum number of pooled database connections.
    #[arg(long, env = "NINAIVALAIGAL_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// Seconds to wait for a pooled connection before answering UNAVAILABLE.
    #[arg(long, env = "NINAIVALAIGAL_DB_TIMEOUT_SECONDS", default_value_t = 5)]
    pub db_timeout_seconds: u64,
    /// PEM file of the CA that signed the database server's certificate;
    /// checked with `sslmode=verify-ca` or `verify-full` in the URL (and
    /// with `require`, minus the host name).
    #[arg(long, env = "NINAIVALAIGAL_DATABASE_CA")]
    pub database_ca: Option<PathBuf>,
}

impl DatabaseSettings {
    /// The pool these settings describe; fails when the CA file does not load.
    pub fn pool(&self) -> anyhow::Result<PgPool> {
        Ok(build_pool(
            &self.database_url,
            self.tls()?,
            self.db_pool_size,
            Duration::from_secs(self.db_timeout_seconds),
        ))
    }

    /// How connections to the database are secured.
    pub fn tls(&self) -> anyhow::Result<DatabaseTls> {
        DatabaseTls::new(&self.database_url, self.database_ca.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_has_a_version_of_its_own() {
        // diesel knows a migration by the digits of its directory's date
        // part; of two that share them, only the first ever runs.
        use diesel::{migration::MigrationSource, pg::Pg};
        let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap();
        let mut versions: Vec<String> = migrations
            .iter()
            .map(|migration| migration.name().version().to_string())
            .collect();
        let count = versions.len();
        versions.sort();
        versions.dedup();
        assert_eq!(versions.len(), count, "shared versions among {versions:?}");
        assert!(count >= 6, "{versions:?}");
    }

    #[test]
    fn database_url_hides_the_password() {
        let url: DatabaseUrl = "postgres://svc:s3cret@db:5432/app".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://svc:***@db:5432/app");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://svc:s3cret@db:5432/app");
    }

    #[test]
    fn lost_connections_are_told_apart_from_failed_queries() {
        let error =
            |kind, message: &str| DieselError::DatabaseError(kind, Box::new(message.to_owned()));
        for lost in [
            error(DatabaseErrorKind::ClosedConnection, "whatever"),
            error(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            error(
                DatabaseErrorKind::UnableToSendCommand,
                "error communicating with the server: Connection reset by peer (os error 104)",
            ),
            error(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            error(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
        ] {
            assert!(is_connection_lost(&lost), "{lost:?}");
        }
        for failed in [
            DieselError::NotFound,
            error(DatabaseErrorKind::Unknown, "syntax error at or near \"x\""),
            error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            error(
                DatabaseErrorKind::UnableToSendCommand,
                "too many bind parameters",
            ),
        ] {
            assert!(!is_connection_lost(&failed), "{failed:?}");
        }
    }

    #[test]
    fn database_url_rejects_other_shapes() {
        for bad in [
            "",
            "mysql://x@h/db",
            "postgres://host",
            "postgres://u:p@host/",
            "localhost:5432",
            "postgres://u:p@host/db?sslmode=verify",
        ] {
            assert!(
                bad.parse::<DatabaseUrl>().is_err(),
                "{bad} should be refused"
            );
        }
    }
}
