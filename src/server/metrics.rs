//! Metrics of the server frame: the endpoint that serves a service's
//! [`Metrics`] as Prometheus text on a port of its own, and the layer that
//! counts and times every RPC by name and gRPC status code.
//!
//! The RPC label is the request's path only when it names an RPC the
//! service serves (read from the compiled contracts at start-up); any other
//! path is `unknown`, so a client cannot grow the number of series. The
//! status code is read where gRPC puts it: in the response headers of a
//! trailers-only response (every error tonic answers, and the frame's own
//! refusals), otherwise in the trailers at the end of the body. A response
//! body dropped before its trailers (the client went away) counts as
//! `CANCELLED`.

use std::{
    collections::HashSet,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use ::metrics::{Gauge, Key, Label, Recorder as _};
use anyhow::Context as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tokio::{net::TcpListener, time::Instant};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// Where each service serves its metrics.
#[derive(Clone, Debug, clap::Args)]
pub struct MetricsSettings {
    /// Address of the Prometheus metrics endpoint (plain HTTP, `GET
    /// /metrics`), a port of its own apart from gRPC. Unset (the default):
    /// no endpoint. It shows no user data, but bind it only where the
    /// monitoring can reach it (loopback, or a pod port that a network
    /// policy opens to Prometheus alone).
    #[arg(long, env = "NINAIVALAIGAL_METRICS_LISTEN_ADDR")]
    pub metrics_listen_addr: Option<SocketAddr>,
}

/// Requests answered, by RPC and status code.
pub const REQUESTS: &str = "ninaivalaigal_grpc_requests_total";
/// Time from a request's arrival to the end of its response, by RPC and code.
pub const DURATION: &str = "ninaivalaigal_grpc_request_duration_seconds";
/// Requests being handled now.
pub const IN_FLIGHT: &str = "ninaivalaigal_grpc_requests_in_flight";
/// The RPC label of a path that names no RPC of this service.
const UNKNOWN_RPC: &str = "unknown";

/// Binds the metrics endpoint's listener, naming the setting on failure.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        anyhow::anyhow!("NINAIVALAIGAL_METRICS_LISTEN_ADDR: cannot listen on {addr}: {error}")
    })
}

/// Serves `GET /metrics` on `listener` until aborted.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics endpoint failed");
    }
}

/// The paths of every RPC of `services` (full names such as
/// `ninaivalaigal.memory.v1.MemoryService`) in the compiled contracts, plus
/// health and reflection.
pub fn known_rpcs(services: &[&str]) -> anyhow::Result<HashSet<String>> {
    let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .context("the compiled contracts do not decode")?;
    let mut paths: HashSet<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if services.contains(&full.as_str()) {
                paths.extend(
                    service
                        .method
                        .iter()
                        .map(|method| format!("/{full}/{}", method.name())),
                );
            }
        }
    }
    Ok(paths)
}

/// Counts and times every request (see the module's documentation).
#[derive(Clone)]
pub struct RpcMetricsLayer {
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Metrics,
    known: HashSet<String>,
    in_flight: Gauge,
}

impl RpcMetricsLayer {
    /// Records into `metrics`; `known` are the RPC paths that get their own label.
    pub fn new(metrics: Metrics, known: HashSet<String>) -> Self {
        metrics.describe(REQUESTS, "gRPC requests answered, by RPC and status code.");
        metrics.describe(
            DURATION,
            "Seconds from a request's arrival to the end of its response, by RPC and status code.",
        );
        metrics.describe(IN_FLIGHT, "gRPC requests being handled now.");
        let in_flight = metrics.gauge(IN_FLIGHT, &[]);
        Self {
            shared: Arc::new(Shared {
                metrics,
                known,
                in_flight,
            }),
        }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`RpcMetricsLayer`].
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<http::Request<Body>> for RpcMetrics<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let rpc = if self.shared.known.contains(path) {
            path.to_owned()
        } else {
            UNKNOWN_RPC.to_owned()
        };
        let mut observation = Observation::start(self.shared.clone(), rpc);
        let response = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = response.await;
            if let Some(code) = grpc_code(response.headers()) {
                observation.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(ObservedBody {
                    inner: body,
                    observation,
                })
            }))
        })
    }
}

/// One request being counted: in flight from its start until `finish`, or
/// until dropped unfinished (the client went away: `CANCELLED`).
struct Observation {
    shared: Arc<Shared>,
    rpc: String,
    started: Instant,
    finished: bool,
}

impl Observation {
    fn start(shared: Arc<Shared>, rpc: String) -> Self {
        shared.in_flight.increment(1.0);
        Self {
            shared,
            rpc,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.shared.in_flight.decrement(1.0);
        let labels = vec![
            Label::new("rpc", self.rpc.clone()),
            Label::from_static_parts("code", code_name(code)),
        ];
        let recorder = self.shared.metrics.recorder();
        let metadata = self.shared.metrics.metadata();
        recorder
            .register_counter(&Key::from_parts(REQUESTS, labels.clone()), metadata)
            .increment(1);
        recorder
            .register_histogram(&Key::from_parts(DURATION, labels), metadata)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// A response body that finishes its request's observation when the
/// trailers pass (or the body ends or fails without them).
struct ObservedBody {
    inner: Body,
    observation: Observation,
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or(Code::Unknown);
                    self.observation.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => self.observation.finish(status.code()),
            Poll::Ready(None) => self.observation.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `grpc-status` in these headers or trailers, if any.
fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from_i32(value.parse().ok()?))
}

/// The canonical name of a gRPC status code, as Prometheus labels it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_services_own_rpcs_and_the_standard_ones_are_known() {
        let known = known_rpcs(&["ninaivalaigal.memory.v1.MemoryService"]).unwrap();
        assert!(known.contains("/ninaivalaigal.memory.v1.MemoryService/Remember"));
        assert!(known.contains("/grpc.health.v1.Health/Check"));
        assert!(!known.iter().any(|path| path.contains("AuthService")));
    }

    #[test]
    fn status_codes_are_read_from_headers_or_trailers() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(grpc_code(&headers), Some(Code::NotFound));
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        // Codes beyond the 17 of gRPC are UNKNOWN, not a new label value.
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(grpc_code(&headers).map(code_name), Some("UNKNOWN"));
    }
}
