//! Both services, running in the test's runtime on real sockets.

use std::net::SocketAddr;

use clap::Parser;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use crate::{TestDb, cluster::Role};

/// The auth-service and the memory-service, serving one test's database.
/// Dropping it stops both services and drops the database.
pub struct TestPair {
    /// Where the auth-service listens.
    pub auth_addr: SocketAddr,
    /// Where the memory-service listens.
    pub memory_addr: SocketAddr,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    // Declared last so it is dropped after the services have been told to stop.
    pub db: TestDb,
}

/// Extra command-line settings for each service, on top of the harness's own.
#[derive(Clone, Debug, Default)]
pub struct PairSettings {
    /// Extra `--flag=value` arguments for the auth-service. Passing
    /// `--jwt-secret=...` or `--jwt-private-key-file=...` replaces the
    /// harness's own Ed25519 key, and `--bcrypt-cost=...` its cost of 4.
    pub auth_args: Vec<String>,
    /// Extra `--flag value` arguments for the memory-service.
    pub memory_args: Vec<String>,
}

/// Starts both services with the harness's default settings and waits until
/// both report SERVING.
pub async fn spawn_pair() -> TestPair {
    let pair = spawn_pair_with(PairSettings::default()).await;
    pair.wait_until_serving().await;
    pair
}

/// Starts both services with extra settings.
pub async fn spawn_pair_with(extra: PairSettings) -> TestPair {
    let db = TestDb::new().await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();

    // Ed25519 with the per-process harness key and bcrypt cost 4, unless the
    // test says otherwise; the key file only needs to exist while the
    // service starts.
    let key_file = crate::keys::harness_key().write_private_key();
    let overridden = |flag: &str| extra.auth_args.iter().any(|arg| arg.starts_with(flag));
    let mut auth_args = vec![
        "auth-service".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        format!("--database-url={}", db.url(Role::Auth)),
    ];
    if !overridden("--bcrypt-cost") {
        auth_args.push("--bcrypt-cost=4".to_owned());
    }
    if !overridden("--jwt-secret") && !overridden("--jwt-private-key-file") {
        auth_args.push(format!(
            "--jwt-private-key-file={}",
            key_file.path.display()
        ));
    }
    auth_args.extend(extra.auth_args.iter().cloned());
    let auth_settings = auth_service::config::Settings::try_parse_from(&auth_args)
        .unwrap_or_else(|error| panic!("auth-service settings: {error}"));
    let auth = auth_service::startup::Application::build(auth_settings)
        .await
        .unwrap_or_else(|error| panic!("auth-service starts: {error:#}"));
    drop(key_file);
    let auth_addr = auth.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tasks.push(tokio::spawn(auth.run_until(async {
        let _ = stopped.await;
    })));

    let mut memory_args = vec![
        "memory-service".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        format!("--database-url={}", db.url(Role::Memory)),
        // Public keys from this pair's auth-service (ignored with --jwt-secret).
        format!("--auth-url=http://{auth_addr}"),
        // Revocations take effect within this; tests wait about as long.
        "--revocation-poll-seconds=0.2".to_owned(),
    ];
    memory_args.extend(extra.memory_args);
    let memory_settings = memory_service::config::Settings::try_parse_from(&memory_args)
        .unwrap_or_else(|error| panic!("memory-service settings: {error}"));
    let memory = memory_service::startup::Application::build(memory_settings)
        .await
        .expect("memory-service starts");
    let memory_addr = memory.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tasks.push(tokio::spawn(memory.run_until(async {
        let _ = stopped.await;
    })));

    TestPair {
        auth_addr,
        memory_addr,
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
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        for addr in [self.auth_addr, self.memory_addr] {
            let mut client = HealthClient::new(channel(addr).await);
            loop {
                let status = client
                    .check(HealthCheckRequest::default())
                    .await
                    .map(|response| response.into_inner().status());
                if let Ok(ServingStatus::Serving) = status {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{addr} is not SERVING after 15 s: {status:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    /// A channel to the auth-service.
    pub async fn auth_channel(&self) -> Channel {
        channel(self.auth_addr).await
    }

    /// A channel to the memory-service.
    pub async fn memory_channel(&self) -> Channel {
        channel(self.memory_addr).await
    }

    /// `http://` URL of the auth-service.
    pub fn auth_url(&self) -> String {
        format!("http://{}", self.auth_addr)
    }

    /// `http://` URL of the memory-service.
    pub fn memory_url(&self) -> String {
        format!("http://{}", self.memory_addr)
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

/// Connects a channel over a real TCP socket.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"))
}
