//! Accepted connections: at most `max_connections` at once, with Nagle's
//! algorithm off, counting what is written for [`UnreadBytes`], closed
//! when idle (nothing moves either way for the idle timeout, or responses
//! wait unread by the peer for that long) and, when
//! the server serves TLS, handshaken within the handshake timeout (a client
//! that opens a connection and sends nothing holds its slot no longer).

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
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

use super::{
    tls::ServerTls,
    unread::{ConnectionUnread, UnreadBytes},
};

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
    unread: Arc<UnreadBytes>,
    tls: Option<ServerTls>,
) -> impl Stream<Item = io::Result<Connection>> {
    let permits = Arc::new(Semaphore::new(max_connections));
    // No Nagle: a response of more than one segment would otherwise wait for
    // the client's delayed ACK (about 40 ms a response).
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(move |accepted| {
            let permits = permits.clone();
            let unread = unread.clone();
            async move {
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(error) => return Some(Err(error)),
                };
                match permits.try_acquire_owned() {
                    Ok(permit) => Some(Ok(GuardedConnection {
                        stream,
                        _permit: permit,
                        unread: Arc::new(unread.connection()),
                        idle_timeout,
                        last_activity: Instant::now(),
                        idle: Box::pin(tokio::time::sleep(idle_timeout)),
                    })),
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
    type ConnectInfo = ConnectionInfo;

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

/// A client connection that holds one of the connection permits, counts
/// the bytes written to it, and fails its reads once it has been idle for
/// the idle timeout (which makes the server drop it).
///
/// Idle means no progress: nothing read or written, or responses waiting
/// unread the whole time.
pub struct GuardedConnection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    unread: Arc<ConnectionUnread>,
    idle_timeout: Duration,
    last_activity: Instant,
    idle: Pin<Box<Sleep>>,
}

/// What every request on a [`GuardedConnection`] is told of it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The peer's address, as for a plain TCP stream.
    pub tcp: TcpConnectInfo,
    /// The connection's unread response bytes.
    pub unread: Arc<ConnectionUnread>,
}

impl Connected for GuardedConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.stream.connect_info(),
            unread: self.unread.clone(),
        }
    }
}

impl GuardedConnection {
    fn wrote(&mut self, bytes: usize) {
        if bytes > 0 {
            self.unread.written(bytes);
            self.moved();
        }
    }

    /// Bytes moved one way or the other. That is progress only once no
    /// response waits unread: a peer can always send (requests, pings) and
    /// make the server write (pings, refusals) without reading any.
    fn moved(&mut self) {
        if self.unread.unread() == 0 {
            self.last_activity = Instant::now();
        }
    }

    /// Ready with an error once the connection has been idle too long. The
    /// timer is moved on lazily, when it fires, rather than at every read
    /// and write.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_activity + self.idle_timeout;
            if due <= Instant::now() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection made no progress within the idle timeout",
                ));
            }
            self.idle.as_mut().reset(due);
        }
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
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for GuardedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
        self.wrote(written);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.wrote(written);
        Poll::Ready(Ok(written))
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
