//! Finding (and if need be starting) the local PostgreSQL server.

use std::{
    collections::HashMap,
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

/// Where the local server is and how each role logs in, as written by
/// `deploy/local/postgres.sh` to its `db.env`.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Password of `ninaivalaigal_owner`.
    pub owner_password: String,
    /// Password of `ninaivalaigal_auth`.
    pub auth_password: String,
    /// Password of `ninaivalaigal_memory`.
    pub memory_password: String,
    /// Ports of the other nodes of a Citus cluster whose coordinator is
    /// [`Cluster::port`] (`CITUS_WORKER_PORTS` in `db.env`, written by
    /// `deploy/citus/cluster.sh`); empty for a single server. Each test's
    /// database is cloned on every one of them too.
    pub worker_ports: Vec<u16>,
}

/// The roles the harness connects as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns the tables; runs migrations and creates databases.
    Owner,
    /// The auth-service's login role.
    Auth,
    /// The memory-service's login role.
    Memory,
}

impl Cluster {
    /// The server, started and set up on first use in this process.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| match Self::load().filter(Cluster::reachable) {
            Some(cluster) => cluster,
            None => {
                run_setup_script();
                Self::load().expect("deploy/local/postgres.sh did not write db.env")
            }
        })
    }

    /// A `postgres://` URL for `role` on `database`.
    pub fn url(&self, role: Role, database: &str) -> String {
        self.url_on(self.port, role, database)
    }

    /// A `postgres://` URL for `role` on `database` of the node on `port`
    /// (the coordinator or a worker of a Citus cluster).
    pub fn url_on(&self, port: u16, role: Role, database: &str) -> String {
        let (user, password) = match role {
            Role::Owner => ("ninaivalaigal_owner", &self.owner_password),
            Role::Auth => ("ninaivalaigal_auth", &self.auth_password),
            Role::Memory => ("ninaivalaigal_memory", &self.memory_password),
        };
        format!("postgres://{user}:{password}@127.0.0.1:{port}/{database}")
    }

    /// The URL the services under test get for `role` on `database`: the
    /// server's, or, when `NINAIVALAIGAL_TEST_SERVICE_DB_PORT` names a port,
    /// a connection pooler's on that port of 127.0.0.1 (the same roles and
    /// passwords; `deploy/pooler/test.sh`). Fixtures and assertions keep
    /// connecting to the server directly.
    pub fn service_url(&self, role: Role, database: &str) -> String {
        let direct = self.url(role, database);
        match std::env::var("NINAIVALAIGAL_TEST_SERVICE_DB_PORT") {
            Ok(port) => {
                let port: u16 = port.parse().unwrap_or_else(|_| {
                    panic!("NINAIVALAIGAL_TEST_SERVICE_DB_PORT={port:?} is not a port")
                });
                direct.replacen(
                    &format!("@127.0.0.1:{}/", self.port),
                    &format!("@127.0.0.1:{port}/"),
                    1,
                )
            }
            Err(_) => direct,
        }
    }

    fn load() -> Option<Cluster> {
        let text = std::fs::read_to_string(db_env_path()).ok()?;
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .collect();
        Some(Cluster {
            port: vars.get("NINAIVALAIGAL_PG_PORT")?.parse().ok()?,
            owner_password: vars.get("NINAIVALAIGAL_OWNER_DB_PASSWORD")?.to_string(),
            auth_password: vars.get("NINAIVALAIGAL_AUTH_DB_PASSWORD")?.to_string(),
            memory_password: vars.get("NINAIVALAIGAL_MEMORY_DB_PASSWORD")?.to_string(),
            worker_ports: vars
                .get("CITUS_WORKER_PORTS")
                .map(|ports| {
                    ports
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn reachable(&self) -> bool {
        TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1))
            .is_ok()
    }
}

/// The same state directory that `deploy/local/postgres.sh` uses.
fn db_env_path() -> PathBuf {
    let state_dir = std::env::var_os("NINAIVALAIGAL_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let state_home = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
                });
            state_home.join("ninaivalaigal")
        });
    state_dir.join("db.env")
}

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

fn run_setup_script() {
    let script = repo_root().join("deploy/local/postgres.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    assert!(status.success(), "{} failed ({status})", script.display());
}
