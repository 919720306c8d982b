//! A raw HTTP/2 client for tests that must behave as no gRPC library would:
//! leave bodies unfinished, announce lengths they never send, never read
//! their responses.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::{net::TcpStream, time::Instant};

/// A raw HTTP/2 connection, driven in the background, once the server's
/// SETTINGS have arrived (so the client knows the server's limits). It
/// reads only what its windows allow: 64 KiB, as the handshake sets them.
pub async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    let (send, connection) = h2::client::handshake(tcp)
        .await
        .unwrap_or_else(|error| panic!("HTTP/2 handshake with {addr}: {error}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while send.current_max_send_streams() == usize::MAX {
        assert!(Instant::now() < deadline, "no SETTINGS from {addr}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    send.ready()
        .await
        .unwrap_or_else(|error| panic!("HTTP/2 connection to {addr}: {error}"))
}

/// The headers of a gRPC call to `path` (`/package.Service/Method`), with
/// `extra` headers (e.g. `grpc-timeout`, `authorization`).
pub fn grpc_request(path: &str, extra: &[(&str, &str)]) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
        .body(())
        .unwrap_or_else(|error| panic!("a gRPC request to {path}: {error}"))
}

/// One gRPC message frame: the flag byte, the big-endian length, `message`.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let len = u32::try_from(message.len()).expect("a message under 4 GiB");
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}
