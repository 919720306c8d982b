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
use tower_http::{
    classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

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
        // Not ready until report_health has seen the database and the keys.
        for service in ["", MEMORY_SERVICE_NAME] {
            health_reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        background.spawn(report_health(
            health_reporter,
            pool.clone(),
            self.jwks.clone(),
            settings.health_check_seconds.0,
        ));
        let (reflection_v1, reflection_v1alpha) =
            ninaivalaigal::grpc::reflection_services(&[MEMORY_SERVICE_NAME])?;

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
        // Every log line of a request carries its request id (from the
        // client's x-request-id, or a fresh one) and the RPC path, and the
        // response echoes the id. No payloads or headers are logged.
        let tracing_layers = tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new(client_errors_are_not_failures()).make_span_with(request_span))
            .layer(PropagateRequestIdLayer::x_request_id());
        let served = Server::builder()
            .layer(tracing_layers)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(memory_service)
            // No Nagle: a response of more than one segment would otherwise wait
            // for the client's delayed ACK (~40 ms per Recall page).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .context("gRPC server failed");
        drop(background);
        served?;
        tracing::info!("memory-service stopped");
        Ok(())
    }
}

/// Only statuses that mean something is wrong here are logged as failures
/// (at ERROR); a client's NOT_FOUND or UNAUTHENTICATED is not.
fn client_errors_are_not_failures() -> SharedClassifier<GrpcErrorsAsFailures> {
    let mut classifier = GrpcErrorsAsFailures::new();
    for code in [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::FailedPrecondition,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
        GrpcCode::ResourceExhausted,
    ] {
        classifier = classifier.with_success(code);
    }
    SharedClassifier::new(classifier)
}

/// The span of one request: its RPC and request id, nothing from the body.
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", rpc = %request.uri().path(), request_id)
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

/// The gRPC name of the memory service, for health reports.
const MEMORY_SERVICE_NAME: &str =
    <MemoryServiceServer<MemoryRpc> as tonic::server::NamedService>::NAME;

/// Reports SERVING only while the service can do its work: the database
/// answers and, in EdDSA mode, the auth-service's public keys have been
/// fetched (without them every token would be refused). Checks every
/// `every`, and every quarter second while not serving, so readiness shows
/// soon after start-up.
async fn report_health(
    reporter: HealthReporter,
    pool: PgPool,
    jwks: Option<Arc<JwksSource>>,
    every: Duration,
) {
    let mut reported = Some(false);
    loop {
        let database_ok = matches!(
            tokio::time::timeout(every, db::ping(&pool)).await,
            Ok(Ok(()))
        );
        let keys_ok = jwks.as_ref().is_none_or(|jwks| jwks.has_keys());
        let serving = database_ok && keys_ok;
        if reported != Some(serving) {
            let status = if serving {
                tracing::info!("ready: reporting SERVING");
                ServingStatus::Serving
            } else {
                tracing::warn!(database_ok, keys_ok, "not ready: reporting NOT_SERVING");
                ServingStatus::NotServing
            };
            reporter
                .set_service_status(MEMORY_SERVICE_NAME, status)
                .await;
            reporter.set_service_status("", status).await;
            reported = Some(serving);
        }
        let pause = if serving {
            every
        } else {
            every.min(Duration::from_millis(250))
        };
        tokio::time::sleep(pause).await;
    }
}
