//! A PostgreSQL server of a test's own, for tests that break the database
//! server itself (kill it, restart it, cut its connections). The shared
//! server of [`crate::cluster`] serves every other test at the same time and
//! must never be touched that way.
//!
//! [`PrivateCluster::start_new`] runs `initdb` into a temporary directory,
//! starts the server with `pg_ctl` on a free port (TCP on 127.0.0.1 only,
//! its unix socket in the same directory, `fsync` on: durability is what the
//! fault tests check), creates the three roles with the attributes
//! `deploy/local/postgres.sh` gives them (random passwords), creates the
//! database and runs the migrations. When the tests run as root, the server
//! runs as the `postgres` OS user (`runuser`), which owns the directory.
//! Dropping the value stops the server (`-m immediate`) and deletes the
//! directory. [`PrivateCluster::start_new_with_tls`] also turns `ssl` on
//! with a certificate the test made.

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::db::{DatabaseUrl, run_migrations};
use tokio::{process::Command, time::Instant};

use crate::{PairSettings, cluster::Role};

/// The database the services use on a private cluster.
pub const DATABASE: &str = "ninaivalaigal";

/// A running PostgreSQL server that belongs to one test.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    as_postgres: bool,
    superuser_password: String,
    owner_password: String,
    auth_password: String,
    memory_password: String,
}

impl PrivateCluster {
    /// Creates, starts and sets up a new cluster (about a second).
    pub async fn start_new() -> Self {
        Self::create(None).await
    }

    /// [`Self::start_new`], with `ssl = on` and the server certificate and
    /// key given (PEM). Clients may still connect without TLS.
    pub async fn start_new_with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::create(Some((cert_pem, key_pem))).await
    }

    async fn create(tls: Option<(&str, &str)>) -> Self {
        crate::logs::init();
        let dir = std::env::temp_dir().join(format!(
            "ninaivalaigal-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("sock")).expect("create the cluster directory");
        let cluster = Self {
            bin_dir: postgres_bin_dir(),
            port: free_port(),
            as_postgres: running_as_root(),
            superuser_password: random_password(),
            owner_password: random_password(),
            auth_password: random_password(),
            memory_password: random_password(),
            dir,
        };
        let pwfile = cluster.dir.join("pwfile");
        std::fs::write(&pwfile, &cluster.superuser_password).expect("write the password file");
        if cluster.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir))
            .await;
        }
        let data = cluster.data_dir();
        cluster
            .pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-locale"])
            .args(["-E", "UTF8", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .await
            .map(|output| expect_success("initdb", output))
            .expect("run initdb");
        std::fs::remove_file(&pwfile).expect("remove the password file");
        let conf = format!(
            "\n# Added by the test harness (tests/src/private_cluster.rs).\n\
             port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sock}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             max_connections = 60\n\
             shared_buffers = 16MB\n",
            port = cluster.port,
            sock = cluster.dir.join("sock").display(),
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        if let Some((cert, key)) = tls {
            cluster
                .write_server_file(&data.join("server.crt"), cert)
                .await;
            cluster
                .write_server_file(&data.join("server.key"), key)
                .await;
            text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        cluster.start().await;
        cluster.set_up().await;
        cluster
    }

    /// Writes a file only the server may read (the server refuses a key
    /// that others can read).
    async fn write_server_file(&self, path: &Path, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents).expect("write a server file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .expect("make a server file private");
        if self.as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(path)).await;
        }
    }

    /// Creates the roles and the database, and migrates it.
    async fn set_up(&self) {
        let mut conn = self.superuser_on("postgres").await;
        // The passwords are random alphanumerics, safe inside quotes.
        conn.batch_execute(&format!(
            "CREATE ROLE ninaivalaigal_owner  WITH LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB   NOCREATEROLE PASSWORD '{}';
             CREATE ROLE ninaivalaigal_auth   WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '{}';
             CREATE ROLE ninaivalaigal_memory WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '{}';
             GRANT pg_signal_backend TO ninaivalaigal_owner;",
            self.owner_password, self.auth_password, self.memory_password
        ))
        .await
        .expect("create the roles");
        // Alone: CREATE DATABASE cannot run in the implicit transaction of
        // a multi-statement query.
        conn.batch_execute(&format!(
            "CREATE DATABASE {DATABASE} OWNER ninaivalaigal_owner"
        ))
        .await
        .expect("create the database");
        run_migrations(&self.database_url(Role::Owner))
            .await
            .expect("migrations apply to the private cluster");
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL for `role` on the services' database.
    pub fn url(&self, role: Role) -> String {
        let (user, password) = match role {
            Role::Owner => ("ninaivalaigal_owner", &self.owner_password),
            Role::Auth => ("ninaivalaigal_auth", &self.auth_password),
            Role::Memory => ("ninaivalaigal_memory", &self.memory_password),
        };
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// [`Self::url`], typed as the services take it.
    pub fn database_url(&self, role: Role) -> DatabaseUrl {
        self.url(role)
            .parse()
            .expect("the harness builds valid URLs")
    }

    /// A superuser connection to `database`.
    pub async fn superuser_on(&self, database: &str) -> AsyncPgConnection {
        let url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.superuser_password, self.port
        );
        AsyncPgConnection::establish(&url)
            .await
            .unwrap_or_else(|error| panic!("superuser connection to {database}: {error}"))
    }

    /// A superuser connection to the services' database.
    pub async fn superuser(&self) -> AsyncPgConnection {
        self.superuser_on(DATABASE).await
    }

    /// Changes to the pair's settings that point both services at this
    /// cluster (the pair's own [`crate::TestDb`] on the shared server is
    /// then left unused).
    pub fn pair_settings(&self) -> PairSettings {
        let (auth, memory) = (
            self.database_url(Role::Auth),
            self.database_url(Role::Memory),
        );
        PairSettings::default()
            .auth(move |s| s.database.database_url = auth)
            .memory(move |s| s.database.database_url = memory)
    }

    /// The postmaster's pid, from `postmaster.pid`; `None` when stopped.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILLs the postmaster, as a crash or the OOM killer would. Its
    /// backends notice and exit on their own; [`Self::start`] then runs
    /// crash recovery.
    pub async fn kill_9(&self) {
        let pid = self.postmaster_pid().expect("the server is running");
        run(Command::new("kill").args(["-9", &pid.to_string()])).await;
        // Gone once /proc has no such process (it is not our child, so
        // there is nothing to reap).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "postmaster {pid} survived SIGKILL"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts the server and waits until it accepts connections. After a
    /// SIGKILL, the old backends may take a moment to exit before a new
    /// postmaster may start; this retries for up to 20 s.
    pub async fn start(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = self
                .pg_ctl()
                .args(["-w", "-t", "20", "-l"])
                .arg(self.dir.join("server.log"))
                .arg("start")
                .output()
                .await
                .expect("run pg_ctl start");
            if output.status.success() {
                return;
            }
            if Instant::now() >= deadline {
                expect_success("pg_ctl start", output);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `pg_ctl restart -m fast`: a clean shutdown (every session is
    /// terminated, FATAL 57P01) and a new start.
    pub async fn restart_fast(&self) {
        let output = self
            .pg_ctl()
            .args(["-w", "-t", "30", "-m", "fast", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("restart")
            .output()
            .await
            .expect("run pg_ctl restart");
        expect_success("pg_ctl restart", output);
    }

    /// `pg_ctl stop -m fast`.
    pub async fn stop_fast(&self) {
        let output = self
            .pg_ctl()
            .args(["-w", "-t", "30", "-m", "fast", "stop"])
            .output()
            .await
            .expect("run pg_ctl stop");
        expect_success("pg_ctl stop", output);
    }

    /// Terminates every backend logged in as `role` (`pg_terminate_backend`,
    /// as the superuser); returns how many there were.
    pub async fn terminate_backends_of(&self, role: Role) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        let mut conn = self.superuser().await;
        let row: Count = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid)) AS count FROM pg_stat_activity WHERE usename = $1",
        )
        .bind::<diesel::sql_types::Text, _>(role_name(role))
        .get_result(&mut conn)
        .await
        .expect("terminate backends");
        row.count
    }

    /// The server's log so far (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.pg_command("pg_ctl");
        command.arg("-D").arg(self.data_dir());
        command
    }

    /// A PostgreSQL program, run as `postgres` when the tests run as root.
    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The server must not hold the test's pipes open (libtest waits on
        // none of them, but a test that reads output would).
        command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        command
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let program = self.bin_dir.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        let _ = command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The login name of `role`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "ninaivalaigal_owner",
        Role::Auth => "ninaivalaigal_auth",
        Role::Memory => "ninaivalaigal_memory",
    }
}

/// `NINAIVALAIGAL_PG_BIN_DIR`, or the newest `/usr/lib/postgresql/*/bin`
/// (Debian's layout).
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NINAIVALAIGAL_PG_BIN_DIR") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries under /usr/lib/postgresql (or NINAIVALAIGAL_PG_BIN_DIR)")
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            line.split_whitespace().nth(1).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn random_password() -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

async fn run(command: &mut Command) {
    let output = command.output().await.expect("run a command");
    expect_success(&format!("{command:?}"), output);
}

fn expect_success(what: &str, output: Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
