//! A fresh, migrated database per test.
//!
//! On a Citus cluster (`deploy/citus/test.sh`: `db.env` names the workers
//! in `CITUS_WORKER_PORTS`), the template is one that script made and
//! distributed, named by `NINAIVALAIGAL_TEST_TEMPLATE`, and each test's
//! database is cloned from it on the coordinator and on every worker under
//! the same name: the copies carry the same Citus metadata and shards, so
//! together they are a distributed database of the test's own.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
};

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::db::{DatabaseUrl, run_migrations};
use tokio::sync::OnceCell;

use crate::cluster::{Cluster, Role};

/// The database the roles log in to when they are not working in a test's own.
const MAINTENANCE_DB: &str = "ninaivalaigal";

/// Test databases are named `ninaivalaigal_test_<pid>_<random>`.
const TEST_DB_PREFIX: &str = "ninaivalaigal_test_";

/// One test's database, dropped (with any connections still open) soon after
/// the value is dropped.
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// Clones the migrated template into a database of the test's own.
    pub async fn new() -> Self {
        crate::logs::init();
        let template = template().await;
        let name = format!(
            "{TEST_DB_PREFIX}{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        for port in node_ports() {
            let mut conn = connect_on(port, Role::Owner, MAINTENANCE_DB).await;
            // WAL_LOG rather than FILE_COPY: FILE_COPY forces two checkpoints per
            // database, which queue behind each other when tests run in parallel
            // on a server that fsyncs.
            conn.batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {template} STRATEGY = WAL_LOG"
            ))
            .await
            .unwrap_or_else(|error| {
                panic!("cannot create test database {name} on port {port}: {error}")
            });
        }
        Self { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for `role` on this database.
    pub fn url(&self, role: Role) -> String {
        Cluster::get().url(role, &self.name)
    }

    /// The URL a service under test gets for `role` on this database
    /// (through a pooler when one is configured: [`Cluster::service_url`]).
    pub fn service_url(&self, role: Role) -> String {
        Cluster::get().service_url(role, &self.name)
    }

    /// A URL for `role` on this database, typed as the services take it.
    pub fn database_url(&self, role: Role) -> DatabaseUrl {
        self.url(role)
            .parse()
            .expect("the harness builds valid URLs")
    }

    /// A direct connection as `role`, for arranging data and for assertions
    /// at the database level.
    pub async fn connect(&self, role: Role) -> AsyncPgConnection {
        connect(role, &self.name).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // DROP DATABASE waits for every backend of the cluster to absorb a
        // signal barrier, including one this test's runtime is still opening a
        // connection to. Blocking that runtime here would stall the DROP until
        // PostgreSQL's authentication_timeout (60 s), so drop on a thread of
        // its own and do not wait for it. A database whose process exits
        // first is dropped by the next run (`drop_orphans`).
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async move {
                for port in node_ports() {
                    let mut conn = connect_on(port, Role::Owner, MAINTENANCE_DB).await;
                    if let Err(error) = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                    {
                        eprintln!(
                            "warning: cannot drop test database {name} on port {port}: {error}"
                        );
                    }
                }
            });
        });
    }
}

/// Drops the test databases of processes that have exited (their names carry
/// the pid), leaving those of test runs still going alone.
async fn drop_orphans(conn: &mut AsyncPgConnection) {
    #[derive(QueryableByName)]
    struct Database {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let databases: Vec<Database> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'ninaivalaigal\\_test\\_%'",
    )
    .load(conn)
    .await
    .expect("list test databases");
    for Database { datname } in databases {
        let pid = datname
            .trim_start_matches(TEST_DB_PREFIX)
            .split('_')
            .next()
            .unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = conn
                .batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .await;
        }
    }
}

/// Connects as `role` to `database`, panicking with the reason on failure.
pub async fn connect(role: Role, database: &str) -> AsyncPgConnection {
    connect_on(Cluster::get().port, role, database).await
}

/// Connects as `role` to `database` on the node at `port` (a Citus
/// worker, for checks on what each worker holds).
pub async fn connect_on(port: u16, role: Role, database: &str) -> AsyncPgConnection {
    let url = Cluster::get().url_on(port, role, database);
    AsyncPgConnection::establish(&url)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect as {role:?} to {database} on port {port}: {error}")
        })
}

/// The server, or the coordinator and then the workers of a Citus cluster.
fn node_ports() -> Vec<u16> {
    let cluster = Cluster::get();
    std::iter::once(cluster.port)
        .chain(cluster.worker_ports.iter().copied())
        .collect()
}

/// The template a test run outside the harness prepared, if any.
fn prepared_template() -> Option<String> {
    let name = std::env::var("NINAIVALAIGAL_TEST_TEMPLATE").ok()?;
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "NINAIVALAIGAL_TEST_TEMPLATE must be a plain database name, not {name:?}"
    );
    Some(name)
}

/// The migrated template for the current migrations, built once per schema
/// version (an advisory lock makes concurrent test processes build it once).
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            if let Some(name) = prepared_template() {
                for port in node_ports() {
                    drop_orphans(&mut connect_on(port, Role::Owner, MAINTENANCE_DB).await).await;
                }
                return name;
            }
            assert!(
                Cluster::get().worker_ports.is_empty(),
                "a Citus cluster needs a distributed template: run the tests with deploy/citus/test.sh"
            );
            let name = format!("ninaivalaigal_template_{:016x}", migrations_fingerprint());
            let mut conn = connect(Role::Owner, MAINTENANCE_DB).await;
            let lock_key = 0x6e69_6e61_6976_616c_u64 as i64; // "ninaival"
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<BigInt, _>(lock_key)
                .execute(&mut conn)
                .await
                .expect("advisory lock");
            if !database_exists(&mut conn, &name).await {
                let building = format!("{name}_building");
                // A build that died half-way leaves this behind; start over.
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .expect("drop half-built template database");
                conn.batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .expect("create template database");
                let url: DatabaseUrl = Cluster::get()
                    .url(Role::Owner, &building)
                    .parse()
                    .expect("valid URL");
                run_migrations(&url)
                    .await
                    .expect("migrations apply to an empty database");
                conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .expect("rename template database");
            }
            drop_orphans(&mut conn).await;
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(lock_key)
                .execute(&mut conn)
                .await
                .expect("advisory unlock");
            name
        })
        .await
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let row: Count =
        diesel::sql_query("SELECT count(*) AS count FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)
            .await
            .expect("query pg_database");
    row.count > 0
}

/// A fingerprint of the migration files, so a changed schema gets a new template.
fn migrations_fingerprint() -> u64 {
    let mut hasher = DefaultHasher::new();
    let root = crate::cluster::repo_root().join("migrations");
    let mut files: Vec<_> = walk(&root);
    files.sort();
    for path in files {
        path.strip_prefix(&root)
            .unwrap_or(&path)
            .to_string_lossy()
            .hash(&mut hasher);
        std::fs::read(&path).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Sets the row-level security user for the rest of the open transaction,
/// in the one way the memory-service does (`SET LOCAL`, which Citus forwards
/// to its workers and a transaction-mode pooler keeps to the transaction).
pub async fn set_rls_user(conn: &mut AsyncPgConnection, user_id: i64) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("SET LOCAL app.current_user_id = '{user_id}'"))
        .await
}
