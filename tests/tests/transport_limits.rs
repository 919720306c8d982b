//! What one client can make a server hold is bounded: streams per
//! connection, requests in flight, request bodies, time, connections, and
//! what reaches the logs. Each test plays the attacker over a raw HTTP/2 (or
//! TCP) connection and checks the server's answer. The auth-service stands
//! for both services: its RPCs need no token, so the transport is all that
//! stands in the way (both are served by the same frame).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use ninaivalaigal::{server::TransportSettings, settings::Seconds};
use ninaivalaigal_tests::{PairSettings, TestPair, raw_h2, spawn_pair_with};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

const LOGIN: &str = "/ninaivalaigal.auth.v1.AuthService/Login";

/// The pair, with the auth-service's transport settings changed.
async fn auth_with(change: impl FnOnce(&mut TransportSettings) + Send + 'static) -> TestPair {
    let pair = spawn_pair_with(PairSettings::default().auth(|s| change(&mut s.transport))).await;
    pair.wait_until_serving().await;
    pair
}

fn seconds(value: f64) -> Seconds {
    Seconds(Duration::from_secs_f64(value))
}

/// Starts an RPC whose body is never finished: the length prefix announces
/// `announced` bytes and `sent` of them follow.
async fn unfinished_rpc(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    grpc_timeout: Option<&str>,
    announced: u32,
    sent: usize,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    *send = send.clone().ready().await.unwrap();
    let headers: Vec<(&str, &str)> = grpc_timeout
        .map(|timeout| ("grpc-timeout", timeout))
        .into_iter()
        .collect();
    let (response, mut body) = send
        .send_request(raw_h2::grpc_request(path, &headers), false)
        .unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&announced.to_be_bytes());
    frame.resize(5 + sent, b'a');
    body.send_data(Bytes::from(frame), false).unwrap();
    (response, body)
}

/// The gRPC status code and message of a response (trailers-only or not).
async fn grpc_status(response: h2::client::ResponseFuture) -> (i32, String) {
    let response = timeout(Duration::from_secs(10), response)
        .await
        .expect("the server answers in time")
        .unwrap_or_else(|error| panic!("a response: {error:?}"));
    let read = |headers: &http::HeaderMap| {
        tonic::Status::from_header_map(headers)
            .map(|status| (status.code() as i32, status.message().to_owned()))
    };
    if let Some(status) = read(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = chunk;
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    read(&trailers).expect("grpc-status in the trailers")
}

/// Waits until the peer closes `stream`, at most `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn one_connection_gets_a_bounded_number_of_streams() {
    let pair = auth_with(|t| t.max_streams_per_connection = 8).await;
    let send = raw_h2::connect(pair.auth_addr).await;
    assert_eq!(send.current_max_send_streams(), 8);
}

#[tokio::test]
async fn beyond_the_in_flight_limit_requests_are_refused_at_once() {
    let pair = auth_with(|t| t.max_in_flight_requests = 4).await;
    let mut send = raw_h2::connect(pair.auth_addr).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(unfinished_rpc(&mut send, LOGIN, None, 100, 10).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut auth = pair.auth_client().await;
    let started = Instant::now();
    let status = auth
        .login(ninaivalaigal::auth_v1::LoginRequest {
            email: "nobody@example.test".into(),
            password: "wrong password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("limit of 4 requests"),
        "{status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shed, not queued"
    );
    // Health checks are exempt: probes see the truth under load.
    pair.wait_until_serving().await;
    // Once the held requests end, requests are served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = auth
        .login(ninaivalaigal::auth_v1::LoginRequest {
            email: "nobody@example.test".into(),
            password: "wrong password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_buffered() {
    let pair = auth_with(|_| {}).await;
    let mut send = raw_h2::connect(pair.auth_addr).await;
    // Forty streams, each announcing 4 MB and sending 2.5 MB of it, never
    // finishing: each is refused once it passes the RPC's limit, without
    // waiting for (or buffering) the rest.
    let mut pending = Vec::new();
    for _ in 0..40 {
        let (response, body) = unfinished_rpc(&mut send, LOGIN, None, 4_000_000, 2_500_000).await;
        pending.push((response, body));
    }
    for (response, body) in pending {
        let (code, message) = grpc_status(response).await;
        assert_eq!(code, tonic::Code::InvalidArgument as i32, "{message}");
        assert!(
            message.contains("16384 bytes"),
            "names the limit: {message}"
        );
        drop(body);
    }
}

#[tokio::test]
async fn a_request_that_outlives_its_deadline_is_answered_deadline_exceeded() {
    let pair = auth_with(|t| t.request_timeout_seconds = seconds(1.0)).await;
    let mut send = raw_h2::connect(pair.auth_addr).await;
    // The client's shorter grpc-timeout wins...
    let started = Instant::now();
    let (response, _body) = unfinished_rpc(&mut send, LOGIN, Some("200m"), 100, 10).await;
    let (code, message) = grpc_status(response).await;
    assert_eq!(code, tonic::Code::DeadlineExceeded as i32, "{message}");
    assert!(started.elapsed() < Duration::from_millis(900));
    // ...and without one the server's limit holds.
    let (response, _body) = unfinished_rpc(&mut send, LOGIN, None, 100, 10).await;
    let (code, message) = grpc_status(response).await;
    assert_eq!(code, tonic::Code::DeadlineExceeded as i32, "{message}");
    assert!(message.contains("1000 ms"), "{message}");
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let pair = auth_with(|t| {
        t.connection_idle_seconds = seconds(1.0);
        t.keepalive_seconds = seconds(0.3);
        t.keepalive_timeout_seconds = seconds(0.3);
    })
    .await;
    // Not even the HTTP/2 preface.
    let mut silent = TcpStream::connect(pair.auth_addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    // The preface, then nothing: no answer to the server's pings.
    let mut half_open = TcpStream::connect(pair.auth_addr).await.unwrap();
    half_open
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(closed_within(&mut half_open, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let pair = auth_with(|t| t.max_connections = 2).await;
    let _first = TcpStream::connect(pair.auth_addr).await.unwrap();
    let _second = TcpStream::connect(pair.auth_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(pair.auth_addr).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn http1_and_garbage_are_closed_cleanly() {
    let pair = auth_with(|_| {}).await;
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not TLS either",
        &[0xffu8; 1024][..],
    ] {
        let mut stream = TcpStream::connect(pair.auth_addr).await.unwrap();
        let _ = stream.write_all(bytes).await;
        assert!(closed_within(&mut stream, Duration::from_secs(3)).await);
    }
    // And the server is unharmed.
    pair.wait_until_serving().await;
}

#[tokio::test]
async fn request_ids_from_clients_are_bounded_and_sanitized() {
    let pair = auth_with(|_| {}).await;
    let mut auth = pair.auth_client().await;
    let mut echoed = async |id: &str| {
        let mut request = tonic::Request::new(ninaivalaigal::auth_v1::GetJwksRequest {});
        request
            .metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
        let response = auth.get_jwks(request).await.unwrap();
        response
            .metadata()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(echoed("trace-123.abc").await, "trace-123.abc");
    for odd in ["x".repeat(5000), "a b\tc".into(), "<script>".into()] {
        let echoed = echoed(&odd).await;
        assert_ne!(echoed, odd);
        assert_eq!(echoed.len(), 36, "a fresh UUID: {echoed}");
    }
}
