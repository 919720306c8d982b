//! Accepted connections: at most `max_connections` at once, with Nagle's
//! algorithm off, closed when nothing arrives from the peer for the idle
//! timeout, and, when the server serves TLS, handshaken within the
//! handshake timeout (a client that opens a connection and sends nothing
//! holds its slot no longer than that).

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use super::tls::ServerTls;

/// The accepted connections of `listener`. A connection beyond
/// `max_connections` is closed at once (the client sees a reset and may try
/// another replica); the others carry a permit until they close. With
/// `tls`, a connection is handed on once its handshake is done; handshakes
/// run side by side, and one that fails or takes too long closes its
/// connection (and frees its permit).
pub fn incoming(
    listener: TcpListener,
    max_connections: usize,
    idle_timeout: Duration,
    tls: Option<ServerTls>,
) -> impl Stream<Item = io::Result<Connection>> {
    let permits = Arc::new(Semaphore::new(max_connections));
    // No Nagle: a response of more than one segment would otherwise wait for
    // the client's delayed ACK (about 40 ms a response).
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(move |accepted| {
            let permits = permits.clone();
            async move {
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(error) => return Some(Err(error)),
                };
                match permits.try_acquire_owned() {
                    Ok(permit) => Some(Ok(GuardedConnection::new(stream, permit, idle_timeout))),
                    Err(_) => {
                        tracing::warn!(
                            peer = ?stream.peer_addr().ok(),
                            max_connections,
                            "refusing a connection: NINAIVALAIGAL_MAX_CONNECTIONS reached"
                        );
                        None
                    }
                }
            }
        })
        .map(move |accepted| {
            let tls = tls.clone();
            async move {
                let connection = match accepted {
                    Ok(connection) => connection,
                    Err(error) => return Err(error),
                };
                match tls {
                    None => Ok(Some(Connection::Plain(connection))),
                    Some(tls) => Ok(handshake(connection, &tls).await),
                }
            }
        })
        // Every pending handshake holds a permit, so there are never more
        // than `max_connections` of them: this bound never holds back accepts.
        .buffer_unordered(max_connections)
        .filter_map(|handled| futures::future::ready(handled.transpose()))
}

/// The TLS handshake of `connection`, or `None` (logged) when it fails or
/// does not finish in time.
async fn handshake(connection: GuardedConnection, tls: &ServerTls) -> Option<Connection> {
    let peer = connection.stream.peer_addr().ok();
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(connection)).await {
        Ok(Ok(stream)) => Some(Connection::Tls(Box::new(stream))),
        Ok(Err(error)) => {
            tracing::info!(?peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(
                ?peer,
                "TLS handshake not finished within NINAIVALAIGAL_TLS_HANDSHAKE_SECONDS"
            );
            None
        }
    }
}

/// A served connection: plaintext, or TLS over a guarded connection (so the
/// permit and the idle timeout apply to TLS connections alike).
pub enum Connection {
    /// Plaintext gRPC.
    Plain(GuardedConnection),
    /// gRPC over TLS.
    Tls(Box<TlsStream<GuardedConnection>>),
}

impl Connected for Connection {
    // The same info as a plain TCP stream, so `Request::remote_addr` works.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Self::Plain(connection) => connection.connect_info(),
            Self::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(connection) => connection.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A client connection that holds one of the connection permits and fails
/// its reads once the peer has been silent for the idle timeout (which
/// makes the server drop it).
pub struct GuardedConnection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl GuardedConnection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        Self {
            stream,
            _permit: permit,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }
}

impl Connected for GuardedConnection {
    // The same info as a plain TCP stream, so `Request::remote_addr` works.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for GuardedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let deadline = Instant::now() + self.idle_timeout;
                    self.idle.as_mut().reset(deadline);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing received from the peer within the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
