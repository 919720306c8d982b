//! Both services, running in the test's runtime on real sockets.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use clap::Parser;
use memory_service::config::Seconds;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, ClientTlsConfig};

use crate::{TestDb, cluster::Role, eventually};

/// The auth-service and the memory-service, serving one test's database.
/// Dropping it stops both services and drops the database.
pub struct TestPair {
    /// Where the auth-service listens.
    pub auth_addr: SocketAddr,
    /// Where the memory-service listens.
    pub memory_addr: SocketAddr,
    /// The TLS the harness's clients speak, when the services serve TLS.
    client_tls: Option<ClientTlsConfig>,
    /// The auth-service's metrics endpoint, when its settings asked for one.
    pub auth_metrics_addr: Option<SocketAddr>,
    /// The memory-service's metrics endpoint, likewise.
    pub memory_metrics_addr: Option<SocketAddr>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    /// The test's database. Declared last so it is dropped after the
    /// services have been told to stop.
    pub db: TestDb,
}

/// The auth-service's typed settings.
pub type AuthSettings = auth_service::config::Settings;
/// The memory-service's typed settings.
pub type MemorySettings = memory_service::config::Settings;

type Change<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Changes to the harness's settings of each service, applied after the
/// harness has set its own (so a test's change always wins):
///
/// ```ignore
/// spawn_pair_with(
///     PairSettings::default()
///         .auth(|s| s.login_failures_per_account = 3)
///         .memory(|s| s.max_memory_bytes = 1000),
/// )
/// ```
#[derive(Default)]
#[must_use]
pub struct PairSettings {
    auth: Vec<Change<AuthSettings>>,
    memory: Vec<Change<MemorySettings>>,
    client_tls: Option<ClientTlsConfig>,
}

impl PairSettings {
    /// Changes the auth-service's settings, on top of [`auth_settings`].
    pub fn auth(mut self, change: impl FnOnce(&mut AuthSettings) + Send + 'static) -> Self {
        self.auth.push(Box::new(change));
        self
    }

    /// Changes the memory-service's settings, on top of [`memory_settings`].
    pub fn memory(mut self, change: impl FnOnce(&mut MemorySettings) + Send + 'static) -> Self {
        self.memory.push(Box::new(change));
        self
    }

    /// The TLS of the harness's clients ([`TestPair::auth_channel`],
    /// [`TestPair::wait_until_serving`], ...), for services that serve TLS.
    /// When the auth-service serves TLS, the memory-service fetches its
    /// keys from `https://127.0.0.1:PORT` (give it `auth_ca`).
    pub fn client_tls(mut self, tls: ClientTlsConfig) -> Self {
        self.client_tls = Some(tls);
        self
    }
}

impl std::fmt::Debug for PairSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSettings")
            .field("auth_changes", &self.auth.len())
            .field("memory_changes", &self.memory.len())
            .finish()
    }
}

/// The harness's settings of an auth-service on `db`: port 0, bcrypt cost 4,
/// and Ed25519 signing with
/// the key in `private_key_file` (which must exist until the service has
/// been built). To sign with a shared secret instead, set `jwt_secret` and
/// clear `jwt_private_key_file`. Administrators are made as an operator
/// would: [`TestPair::operator`].
pub fn auth_settings(db: &TestDb, private_key_file: &Path) -> AuthSettings {
    let mut settings = AuthSettings::try_parse_from([
        "auth-service",
        &format!("--database-url={}", db.service_url(Role::Auth)),
    ])
    .unwrap_or_else(|error| panic!("auth-service settings: {error}"));
    settings.listen_addr = LOCALHOST_ANY_PORT;
    settings.bcrypt_cost = 4;
    settings.jwt_private_key_file = Some(private_key_file.to_path_buf());
    settings
}

/// The harness's settings of a memory-service on `db`: port 0, public keys
/// from the auth-service at `auth_addr`, revocations read every 0.2 s.
pub fn memory_settings(db: &TestDb, auth_addr: SocketAddr) -> MemorySettings {
    let mut settings = MemorySettings::try_parse_from([
        "memory-service",
        &format!("--database-url={}", db.service_url(Role::Memory)),
    ])
    .unwrap_or_else(|error| panic!("memory-service settings: {error}"));
    settings.listen_addr = LOCALHOST_ANY_PORT;
    settings.auth_url = format!("http://{auth_addr}");
    // Revocations take effect within this; tests wait about as long.
    settings.revocation_poll_seconds = Seconds(Duration::from_millis(200));
    settings
}

const LOCALHOST_ANY_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Starts both services with the harness's default settings and waits until
/// both report SERVING.
pub async fn spawn_pair() -> TestPair {
    let pair = spawn_pair_with(PairSettings::default()).await;
    pair.wait_until_serving().await;
    pair
}

/// Starts both services with the test's changes to the settings, without
/// waiting for them to be ready (some tests start a pair that never is).
pub async fn spawn_pair_with(changes: PairSettings) -> TestPair {
    crate::logs::init();
    let db = TestDb::new().await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();

    // The key file only needs to exist while the service starts.
    let key_file = crate::keys::harness_key().write_private_key();
    let mut auth_settings = auth_settings(&db, &key_file.path);
    for change in changes.auth {
        change(&mut auth_settings);
    }
    let auth_serves_tls = auth_settings.transport.tls.tls_cert.is_some();
    let auth = auth_service::startup::Application::build(auth_settings)
        .await
        .unwrap_or_else(|error| panic!("auth-service starts: {error:#}"));
    drop(key_file);
    let auth_addr = auth.local_addr();
    let auth_metrics_addr = auth.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tasks.push(tokio::spawn(auth.run_until(async {
        let _ = stopped.await;
    })));

    let mut memory_settings = memory_settings(&db, auth_addr);
    if auth_serves_tls {
        memory_settings.auth_url = format!("https://{auth_addr}");
    }
    for change in changes.memory {
        change(&mut memory_settings);
    }
    let memory = memory_service::startup::Application::build(memory_settings)
        .await
        .unwrap_or_else(|error| panic!("memory-service starts: {error:#}"));
    let memory_addr = memory.local_addr();
    let memory_metrics_addr = memory.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tasks.push(tokio::spawn(memory.run_until(async {
        let _ = stopped.await;
    })));

    TestPair {
        auth_addr,
        memory_addr,
        client_tls: changes.client_tls,
        auth_metrics_addr,
        memory_metrics_addr,
        stops,
        tasks,
        db,
    }
}

impl TestPair {
    /// Waits (at most 15 s) until both services report SERVING, as a
    /// deployment's readiness probe would; the memory-service is ready once
    /// it has the auth-service's public keys.
    pub async fn wait_until_serving(&self) {
        use tonic_health::pb::{
            HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
        };
        for addr in [self.auth_addr, self.memory_addr] {
            let mut client = HealthClient::new(self.channel(addr).await);
            eventually(
                format_args!("{addr} to report SERVING"),
                Duration::from_secs(15),
                async || {
                    let status = client
                        .check(HealthCheckRequest::default())
                        .await
                        .map(|response| response.into_inner().status());
                    match status {
                        Ok(ServingStatus::Serving) => Ok(()),
                        other => Err(other),
                    }
                },
            )
            .await;
        }
    }

    /// A channel to the auth-service.
    pub async fn auth_channel(&self) -> Channel {
        self.channel(self.auth_addr).await
    }

    /// A channel to the memory-service.
    pub async fn memory_channel(&self) -> Channel {
        self.channel(self.memory_addr).await
    }

    /// A channel to `addr`, over TLS when the pair was given client TLS.
    async fn channel(&self, addr: SocketAddr) -> Channel {
        match &self.client_tls {
            Some(tls) => tls_channel(addr, tls.clone())
                .await
                .unwrap_or_else(|error| panic!("cannot connect to {addr} over TLS: {error}")),
            None => channel(addr).await,
        }
    }

    /// `http://` URL of the auth-service.
    pub fn auth_url(&self) -> String {
        format!("http://{}", self.auth_addr)
    }

    /// `http://` URL of the memory-service.
    pub fn memory_url(&self) -> String {
        format!("http://{}", self.memory_addr)
    }

    /// Stops the auth-service only (as if its process went away) and
    /// waits until it has drained; the memory-service keeps running.
    pub async fn stop_auth(&mut self) {
        let stop = std::mem::replace(&mut self.stops[0], oneshot::channel().0);
        let _ = stop.send(());
        let task = std::mem::replace(&mut self.tasks[0], tokio::spawn(async { Ok(()) }));
        task.await
            .expect("auth-service task")
            .expect("auth-service stops cleanly");
    }

    /// Starts a new auth-service on the same address, database and signing
    /// key (the harness's), after [`Self::stop_auth`].
    pub async fn start_auth(&mut self) {
        let key_file = crate::keys::harness_key().write_private_key();
        let mut settings = auth_settings(&self.db, &key_file.path);
        settings.listen_addr = self.auth_addr;
        let auth = auth_service::startup::Application::build(settings)
            .await
            .unwrap_or_else(|error| panic!("auth-service starts again: {error:#}"));
        drop(key_file);
        let (stop, stopped) = oneshot::channel::<()>();
        self.stops[0] = stop;
        self.tasks[0] = tokio::spawn(auth.run_until(async {
            let _ = stopped.await;
        }));
    }

    /// Stops both services and waits until they have drained.
    pub async fn shutdown(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            task.await
                .expect("service task")
                .expect("service stops cleanly");
        }
    }
}

impl Drop for TestPair {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects a channel over TLS (`https://`) on a real TCP socket.
pub async fn tls_channel(
    addr: SocketAddr,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://{addr}"))
        .expect("valid URI")
        .tls_config(tls)?
        .connect()
        .await
}

/// Connects a channel over a real TCP socket.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"))
}
