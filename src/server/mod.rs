//! The frame every gRPC service of Ninaivalaigal is served in, built once for
//! both: the listener, TLS (or plaintext where allowed) and the connection
//! limits, the layers every request passes (request id, trace span,
//! unread-response and in-flight limits, deadline, body limit),
//! truthful health, reflection, background tasks that live as long as the
//! server, metrics (`metrics`), and graceful shutdown. A service brings only its own handlers,
//! its readiness check and its background work.
//!
//! ```ignore
//! let mut frame = ServerFrame::bind("memory-service", addr, "NINAIVALAIGAL_MEMORY_LISTEN_ADDR", transport).await?;
//! frame.spawn(poll_revocations(...));
//! frame.serve(Services::new().with(memory_service), body_limits, readiness, shutdown).await
//! ```

mod certificate;
mod connections;
mod health;
mod layers;
mod metrics;
mod reflection;
mod settings;
mod tls;
mod unread;

use std::{convert::Infallible, future::Future, net::SocketAddr};

use anyhow::Context;
use tokio::{net::TcpListener, task::JoinSet};
use tonic::{
    body::Body,
    server::NamedService,
    service::{Routes, RoutesBuilder},
    transport::Server,
};
use tonic_health::ServingStatus;
use tower::Service;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use health::{LIVENESS, Readiness};
pub use layers::{BodyLimits, Deadline};
pub use metrics::MetricsSettings;
pub use settings::{TlsSettings, TransportSettings};

/// The gRPC services one server runs, and their names (for health and
/// reflection).
#[derive(Default)]
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.names.push(S::NAME);
        self
    }
}

/// A service's bound listener and background tasks, ready to serve.
pub struct ServerFrame {
    name: &'static str,
    listener: TcpListener,
    transport: TransportSettings,
    tls: Option<tls::ServerTls>,
    tasks: JoinSet<()>,
    /// The service's metrics; the frame records its RPCs here.
    metrics: crate::metrics::Metrics,
    /// The metrics endpoint's listener, when one is configured.
    metrics_listener: Option<TcpListener>,
}

impl ServerFrame {
    /// Checks the transport settings, loads the TLS certificate (plaintext
    /// only on loopback or when allowed) and binds `addr` (port 0 picks a
    /// free port). Errors name the settings at fault; `setting` is the
    /// variable that chose the address.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        setting: &str,
        transport: TransportSettings,
    ) -> anyhow::Result<Self> {
        transport.check()?;
        let tls = tls::configure(&transport.tls, addr, setting)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| anyhow::anyhow!("{setting}: cannot listen on {addr}: {error}"))?;
        Ok(Self {
            name,
            listener,
            transport,
            tls,
            tasks: JoinSet::new(),
            metrics: crate::metrics::Metrics::new(),
            metrics_listener: None,
        })
    }

    /// The service's metrics, for its own parts (pool, caches) to record in.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Binds the metrics endpoint when `settings` name an address (port 0
    /// picks a free port); it serves once [`Self::serve`] runs.
    pub async fn expose_metrics(&mut self, settings: &MetricsSettings) -> anyhow::Result<()> {
        if let Some(addr) = settings.metrics_listen_addr {
            self.metrics_listener = Some(metrics::bind(addr).await?);
        }
        Ok(())
    }

    /// The address the metrics endpoint bound, if it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("cannot read the listening address")
    }

    /// Runs `task` for as long as the server: it is aborted when serving ends.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Serves `services` (plus health and reflection) until `shutdown`
    /// resolves, then drains in-flight requests and stops the background
    /// tasks. Health is NOT_SERVING until `readiness` first passes.
    pub async fn serve(
        mut self,
        services: Services,
        body_limits: BodyLimits,
        readiness: impl Readiness,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Services { mut routes, names } = services;
        let transport = &self.transport;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        for service in names.iter().copied().chain([""]) {
            health_reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        health_reporter
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        self.tasks.spawn(health::report(
            health_reporter,
            names.clone(),
            readiness,
            transport.health_check_seconds.0,
        ));
        let (reflection_v1, reflection_v1alpha) = reflection::services(&names)?;
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let routes: Routes = routes.routes();
        let rpc_metrics =
            metrics::RpcMetricsLayer::new(self.metrics.clone(), metrics::known_rpcs(&names)?);
        if let Some(listener) = self.metrics_listener.take() {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
            }
            self.tasks
                .spawn(metrics::serve(listener, self.metrics.clone()));
        }

        // Every log line of a request carries its request id (the client's
        // x-request-id when it is sane, or a fresh one) and the RPC path, and
        // the response echoes the id. No payloads or headers are logged.
        let layers = tower::ServiceBuilder::new()
            .map_request(layers::sanitize_request_id::<Body>)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new(layers::client_errors_are_not_failures())
                    .make_span_with(layers::request_span),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(rpc_metrics)
            .layer(layers::GuardLayer::new(
                transport.max_in_flight_requests as usize,
                transport.request_timeout(),
                body_limits,
            ));

        let addr = self.local_addr()?;
        tracing::info!(%addr, tls = self.tls.is_some(), "{} listening", self.name);
        let unread = unread::UnreadBytes::new(
            usize::try_from(transport.max_unread_bytes).unwrap_or(usize::MAX),
            usize::try_from(transport.max_unread_bytes_per_connection).unwrap_or(usize::MAX),
        );
        let incoming = connections::incoming(
            self.listener,
            transport.max_connections as usize,
            transport.connection_idle_seconds.0,
            unread,
            self.tls.take(),
        );
        let served = Server::builder()
            .max_concurrent_streams(transport.max_streams_per_connection)
            .http2_max_header_list_size(settings::MAX_HEADER_LIST_BYTES)
            .initial_connection_window_size(settings::CONNECTION_WINDOW_BYTES)
            .initial_stream_window_size(settings::STREAM_WINDOW_BYTES)
            .http2_max_pending_accept_reset_streams(Some(settings::MAX_RESET_STREAMS))
            .http2_max_local_error_reset_streams(Some(settings::MAX_RESET_STREAMS))
            .http2_keepalive_interval(Some(transport.keepalive_seconds.0))
            .http2_keepalive_timeout(Some(transport.keepalive_timeout_seconds.0))
            .max_connection_age(transport.max_connection_age_seconds.0)
            .max_connection_age_grace(settings::CONNECTION_AGE_GRACE)
            .layer(layers)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("gRPC server failed");
        self.tasks.shutdown().await;
        served?;
        tracing::info!("{} stopped", self.name);
        Ok(())
    }
}
