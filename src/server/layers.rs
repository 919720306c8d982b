//! The tower layers every request passes through, outermost first: its
//! request id, its trace span, the unread-response and in-flight limits, its
//! deadline and the size limit of its RPC.

use std::{
    collections::HashMap,
    convert::Infallible,
    fmt,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::{sync::Semaphore, time::Instant};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use super::{connections::ConnectionInfo, unread::CountedBody};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, GrpcCode, GrpcErrorsAsFailures, GrpcFailureClass,
    SharedClassifier,
};

/// Longest `x-request-id` taken from a client; a longer or odd one is
/// replaced, so that what reaches the logs is short and printable.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Drops a client's `x-request-id` unless it is short and made of
/// `[A-Za-z0-9._:-]`, so that the request-id layer makes a fresh one.
pub fn sanitize_request_id<B>(mut request: http::Request<B>) -> http::Request<B> {
    let acceptable = request.headers().get("x-request-id").is_none_or(|id| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    });
    if !acceptable {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// Only statuses that mean something is wrong here are logged as failures
/// (at ERROR); a client's NOT_FOUND or UNAUTHENTICATED is not, and neither
/// is a request refused at the in-flight limit: under overload that would be
/// one ERROR line per refusal, written when the server can least afford it
/// ([`Guard`] reports refusals itself, at most once a second).
pub fn client_errors_are_not_failures() -> SharedClassifier<Classifier> {
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
        GrpcCode::DeadlineExceeded,
    ] {
        classifier = classifier.with_success(code);
    }
    SharedClassifier::new(Classifier(classifier))
}

/// Marks a response refused at the in-flight limit (a response extension).
#[derive(Clone, Copy, Debug)]
struct Shed;

/// gRPC statuses as [`client_errors_are_not_failures`] counts them.
#[derive(Clone, Debug)]
pub struct Classifier(GrpcErrorsAsFailures);

impl ClassifyResponse for Classifier {
    type FailureClass = GrpcFailureClass;
    type ClassifyEos = <GrpcErrorsAsFailures as ClassifyResponse>::ClassifyEos;

    fn classify_response<B>(
        self,
        response: &http::Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if response.extensions().get::<Shed>().is_some() {
            return ClassifiedResponse::Ready(Ok(()));
        }
        self.0.classify_response(response)
    }

    fn classify_error<E: fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        self.0.classify_error(error)
    }
}

/// Counts refusals at one limit and logs them at most once a second, as
/// one WARN line with the number refused since the last.
struct ShedReport {
    /// The limit, as the log names it.
    limit: String,
    started: Instant,
    /// Milliseconds since `started` before which no report is written.
    next_report_ms: AtomicU64,
    refused: AtomicU64,
}

impl ShedReport {
    fn new(limit: String) -> Self {
        Self {
            limit,
            started: Instant::now(),
            next_report_ms: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let next = self.next_report_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_report_ms
                .compare_exchange(next, now + 1000, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                "at {}: refused {refused} with UNAVAILABLE since the last report (at most one a second)",
                self.limit
            );
        }
    }
}

/// The span of one request: its RPC and request id, nothing from the body.
pub fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", rpc = %request.uri().path(), request_id)
}

/// Health checks pass every limit: a probe must see the truth even when the
/// server is saturated.
fn is_health_check<B>(request: &http::Request<B>) -> bool {
    request.uri().path().starts_with("/grpc.health.v1.Health/")
}

/// When a request must be answered, as the handlers see it (a request
/// extension): the earlier of the client's `grpc-timeout` and the server's
/// limit. The database uses it as the statement timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// Time left, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Parses a `grpc-timeout` header value: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`). `None` for anything else.
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(amount.checked_mul(3600)?),
        b"M" => Duration::from_secs(amount.checked_mul(60)?),
        b"S" => Duration::from_secs(amount),
        b"m" => Duration::from_millis(amount),
        b"u" => Duration::from_micros(amount),
        b"n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Refuses requests on a connection that leaves too many response bytes
/// unread and beyond a number in flight (see [`ConnectionUnread::admit`];
/// UNAVAILABLE at once at the in-flight limit), gives every request a
/// [`Deadline`] and answers DEADLINE_EXCEEDED when it passes, caps each
/// RPC's request body, and counts its response body as made on its
/// connection.
///
/// [`ConnectionUnread::admit`]: super::unread::ConnectionUnread::admit
#[derive(Clone)]
pub struct GuardLayer {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    in_flight_shed: Arc<ShedReport>,
    unread_shed: Arc<ShedReport>,
    timeout: Duration,
    body_limits: Arc<BodyLimits>,
}

impl GuardLayer {
    /// A guard with these limits.
    pub fn new(max_in_flight: usize, timeout: Duration, body_limits: BodyLimits) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            in_flight_shed: Arc::new(ShedReport::new(format!(
                "the limit of {max_in_flight} requests in flight"
            ))),
            unread_shed: Arc::new(ShedReport::new(
                "the limit of response bytes clients have not read".into(),
            )),
            timeout,
            body_limits: Arc::new(body_limits),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S> Service<http::Request<Body>> for Guard<S>
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
        // The clone is not ready; keep the ready one for this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_health_check(&request) {
            return Box::pin(inner.call(request));
        }
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        if let Some(connection) = &connection
            && let Err(refused) = connection.unread.admit()
        {
            if refused.code() == tonic::Code::Unavailable {
                self.layer.unread_shed.refused();
            }
            let mut response = refused.into_http();
            response.extensions_mut().insert(Shed);
            return Box::pin(async move { Ok(response) });
        }
        let Ok(permit) = self.layer.in_flight.clone().try_acquire_owned() else {
            self.layer.in_flight_shed.refused();
            let mut response = Status::unavailable(format!(
                "the server is at its limit of {} requests in flight; retry with backoff",
                self.layer.max_in_flight
            ))
            .into_http();
            response.extensions_mut().insert(Shed);
            return Box::pin(async move { Ok(response) });
        };
        let client_timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()));
        let timeout = client_timeout.map_or(self.layer.timeout, |t| t.min(self.layer.timeout));
        let deadline = Instant::now() + timeout;
        let limit = self.layer.body_limits.limit_for(request.uri().path());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(Deadline(deadline));
        if let Some(connection) = &connection {
            // Where tonic's `Request::remote_addr` looks for the peer.
            parts.extensions.insert(connection.tcp.clone());
        }
        let request = http::Request::from_parts(parts, Body::new(LimitedBody::new(body, limit)));
        Box::pin(async move {
            let response = tokio::time::timeout_at(deadline, inner.call(request)).await;
            drop(permit);
            match response {
                Ok(Ok(response)) => {
                    let response = decode_failures_are_invalid_argument(response);
                    Ok(match connection {
                        Some(connection) => response
                            .map(|body| Body::new(CountedBody::new(body, connection.unread))),
                        None => response,
                    })
                }
                Ok(Err(infallible)) => match infallible {},
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the request did not complete within its deadline of {} ms",
                    timeout.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// How the protobuf decoder describes a message it cannot decode.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// A request that does not decode is the client's fault, yet the decoder
/// answers INTERNAL: say INVALID_ARGUMENT, and name the nesting limit, the
/// usual cause with well-formed clients.
fn decode_failures_are_invalid_argument(response: http::Response<Body>) -> http::Response<Body> {
    match Status::from_header_map(response.headers()) {
        Some(status)
            if status.code() == tonic::Code::Internal
                && status.message().starts_with(DECODE_FAILURE) =>
        {
            Status::invalid_argument(format!(
                "the request is not a valid message for this RPC ({}); values may nest at most 100 messages deep, about 50 levels of JSON",
                status.message()
            ))
            .into_http()
        }
        _ => response,
    }
}

/// The largest request message each RPC accepts, and what to say when one
/// is larger.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    default: BodyLimit,
    by_path: HashMap<String, BodyLimit>,
}

/// One RPC's body limit and the message that names it.
#[derive(Clone, Debug)]
pub struct BodyLimit {
    bytes: usize,
    message: Arc<str>,
}

impl BodyLimits {
    /// Every RPC gets at most `default_bytes` unless given its own limit.
    pub fn new(default_bytes: usize) -> Self {
        Self {
            default: BodyLimit {
                bytes: default_bytes,
                message: format!(
                    "the request is larger than this RPC's limit of {default_bytes} bytes"
                )
                .into(),
            },
            by_path: HashMap::new(),
        }
    }

    /// Gives the RPC at `path` (`/package.Service/Method`) its own limit and
    /// the message an oversized request gets (INVALID_ARGUMENT).
    pub fn with(mut self, path: &str, bytes: usize, message: impl Into<String>) -> Self {
        self.by_path.insert(
            path.to_owned(),
            BodyLimit {
                bytes,
                message: message.into().into(),
            },
        );
        self
    }

    /// The largest limit of any RPC, for the decoder's own message limit
    /// (which answers OUT_OF_RANGE; this layer answers first).
    pub fn largest(&self) -> usize {
        self.by_path
            .values()
            .map(|limit| limit.bytes)
            .fold(self.default.bytes, usize::max)
    }

    fn limit_for(&self, path: &str) -> BodyLimit {
        self.by_path.get(path).unwrap_or(&self.default).clone()
    }
}

/// A request body that fails with INVALID_ARGUMENT as soon as a gRPC
/// message in it announces more than the RPC's limit: the 5-byte prefix of
/// each message (flag, big-endian length) is read as it passes, so nothing
/// beyond the limit is ever buffered, and the client hears why at once.
struct LimitedBody {
    inner: Body,
    limit: BodyLimit,
    /// Prefix bytes of the next message seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to pass.
    in_message: usize,
}

impl LimitedBody {
    fn new(inner: Body, limit: BodyLimit) -> Self {
        Self {
            inner,
            limit,
            prefix: [0; 5],
            prefix_len: 0,
            in_message: 0,
        }
    }

    /// Follows the message framing through `data`; false once a message
    /// announces more than the limit.
    fn within_limit(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.in_message > 0 {
                let skip = self.in_message.min(data.len());
                self.in_message -= skip;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let announced = u32::from_be_bytes([a, b, c, d]) as usize;
                if announced > self.limit.bytes {
                    return false;
                }
                self.in_message = announced;
            }
        }
        true
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let fits = frame.data_ref().is_none_or(|data| self.within_limit(data));
                if fits {
                    Poll::Ready(Some(Ok(frame)))
                } else {
                    Poll::Ready(Some(Err(Status::invalid_argument(
                        self.limit.message.to_string(),
                    ))))
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tower_http::classify::MakeClassifier;

    use super::*;

    #[test]
    fn refusals_at_the_limit_are_not_failures_but_other_unavailables_are() {
        let classify = |response: &http::Response<Body>| {
            let request = http::Request::new(());
            let ClassifiedResponse::Ready(result) = client_errors_are_not_failures()
                .make_classifier(&request)
                .classify_response(response)
            else {
                panic!("a trailers-only status is classified at once");
            };
            result.is_ok()
        };
        let mut shed = Status::unavailable("at the limit").into_http();
        shed.extensions_mut().insert(Shed);
        assert!(classify(&shed));
        assert!(!classify(&Status::unavailable("database down").into_http()));
        assert!(classify(&Status::not_found("no such context").into_http()));
    }

    #[test]
    fn grpc_timeouts_parse_strictly() {
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        for bad in [&b""[..], b"S", b"5", b"123456789S", b"-5S", b"5s", b"5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn odd_request_ids_are_dropped() {
        let with_id = |id: &str| {
            let request = http::Request::builder()
                .header("x-request-id", id)
                .body(())
                .unwrap();
            sanitize_request_id(request)
                .headers()
                .get("x-request-id")
                .map(|id| id.to_str().unwrap().to_owned())
        };
        assert_eq!(with_id("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(with_id(&"a".repeat(65)), None);
        assert_eq!(with_id("a b"), None);
        assert_eq!(with_id("<script>"), None);
    }

    #[test]
    fn every_message_is_checked_as_its_prefix_passes() {
        let limit = BodyLimits::new(10).limit_for("/any");
        let mut body = LimitedBody::new(Body::empty(), limit);
        // Two messages of 10 bytes, the second prefix split across chunks.
        assert!(body.within_limit(&[0, 0, 0, 0, 10]));
        assert!(body.within_limit(&[b'x'; 10]));
        assert!(body.within_limit(&[0, 0, 0]));
        assert!(body.within_limit(&[0, 10, 1, 2]));
        // A message announcing 11 bytes is refused before its data arrives.
        let mut body = LimitedBody::new(Body::empty(), BodyLimits::new(10).limit_for("/any"));
        assert!(!body.within_limit(&[0, 0, 0, 0, 11]));
        let mut body = LimitedBody::new(Body::empty(), BodyLimits::new(10).limit_for("/any"));
        assert!(!body.within_limit(&[0, 0xff, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn body_limits_fall_back_to_the_default() {
        let limits = BodyLimits::new(100).with("/p.S/Big", 1000, "big");
        assert_eq!(limits.limit_for("/p.S/Big").bytes, 1000);
        assert_eq!(limits.limit_for("/p.S/Other").bytes, 100);
        assert_eq!(limits.largest(), 1000);
    }
}
