//! Builds the memory-service (token verifier and key source, revocation
//! list, pool, health, reflection, the authenticated RPC service) and serves
//! it until the shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use ninaivalaigal::{
    db::PgPool, memory_v1::memory_service_server::MemoryServiceServer, token::TokenVerifier,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::Layer;

use crate::{
    auth::{Authenticator, RequireUserLayer},
    config::Settings,
    db,
    jwks::JwksSource,
    revocation::RevocationList,
    rpc::{MemoryRpc, MemoryState},
};

/// A bound, ready-to-serve memory-service.
pub struct Application {
    listener: TcpListener,
    settings: Settings,
    verifier: Arc<TokenVerifier>,
    jwks: Option<Arc<JwksSource>>,
}

impl Application {
    /// Checks the settings and binds the listener (port 0 picks a free port).
    /// The auth-service need not be up yet: keys are fetched in the background.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (verifier, jwks) = match &settings.jwt_secret {
            Some(secret) => (
                Arc::new(TokenVerifier::hs256(
                    secret.expose().as_bytes(),
                    &settings.jwt_issuer,
                    &settings.jwt_audience,
                    settings.jwt_leeway(),
                )),
                None,
            ),
            None => {
                let verifier = Arc::new(TokenVerifier::ed25519(
                    &settings.jwt_issuer,
                    &settings.jwt_audience,
                    settings.jwt_leeway(),
                ));
                let jwks = JwksSource::new(&settings.auth_url, verifier.clone())?;
                (verifier, Some(Arc::new(jwks)))
            }
        };
        let listener =
            ninaivalaigal::grpc::bind(settings.listen_addr, "NINAIVALAIGAL_MEMORY_LISTEN_ADDR")
                .await?;
        Ok(Self {
            listener,
            settings,
            verifier,
            jwks,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let settings = &self.settings;
        let pool = settings.database.pool();
        let mut background = BackgroundTasks::default();

        let revocations = Arc::new(RevocationList::default());
        if let Err(error) = revocations.reload(&pool).await {
            tracing::warn!(%error, "cannot read the revoked-session list yet");
        }
        background.spawn({
            let (revocations, pool) = (revocations.clone(), pool.clone());
            let every = settings.revocation_poll_seconds.0;
            async move { revocations.poll(pool, every).await }
        });
        if let Some(jwks) = &self.jwks {
            let jwks = jwks.clone();
            let every = settings.jwks_refresh_seconds.0;
            background.spawn(async move { jwks.keep_fresh(every).await });
        }

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<MemoryServiceServer<MemoryRpc>>()
            .await;
        background.spawn(report_database_health(
            health_reporter,
            pool.clone(),
            settings.health_check_seconds.0,
        ));
        let (reflection_v1, reflection_v1alpha) = ninaivalaigal::grpc::reflection_services()?;

        let authenticator = Arc::new(Authenticator::new(
            self.verifier.clone(),
            self.jwks.clone(),
            revocations,
        ));
        let rpc = MemoryRpc::new(Arc::new(MemoryState {
            pool,
            max_memory_bytes: settings.max_memory_bytes as usize,
        }));
        let memory_service = RequireUserLayer::new(authenticator).layer(
            MemoryServiceServer::new(rpc).max_decoding_message_size(settings.max_request_bytes()),
        );

        let addr = self.local_addr();
        tracing::info!(%addr, hs256 = self.jwks.is_none(), "memory-service listening");
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(memory_service)
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener), shutdown)
            .await
            .context("gRPC server failed");
        drop(background);
        served?;
        tracing::info!("memory-service stopped");
        Ok(())
    }
}

/// Tasks that live as long as the server, aborted when it stops.
#[derive(Default)]
struct BackgroundTasks(Vec<JoinHandle<()>>);

impl BackgroundTasks {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Reports NOT_SERVING while the database does not answer, SERVING otherwise.
async fn report_database_health(reporter: HealthReporter, pool: PgPool, every: Duration) {
    let service = <MemoryServiceServer<MemoryRpc> as tonic::server::NamedService>::NAME;
    let mut serving = true;
    loop {
        tokio::time::sleep(every).await;
        let ok = matches!(
            tokio::time::timeout(every, db::ping(&pool)).await,
            Ok(Ok(()))
        );
        if ok != serving {
            serving = ok;
            let status = if ok {
                tracing::info!("database reachable again");
                ServingStatus::Serving
            } else {
                tracing::warn!("database unreachable; reporting NOT_SERVING");
                ServingStatus::NotServing
            };
            reporter.set_service_status(service, status).await;
            reporter.set_service_status("", status).await;
        }
    }
}
