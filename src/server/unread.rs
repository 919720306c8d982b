//! Response bytes the server has made but a peer has not yet taken off its
//! socket.
//!
//! HTTP/2 flow control stops a response from being *sent* to a peer that
//! does not read, not from being *made*: hyper hands a unary response's
//! whole message to the HTTP/2 send buffer, where it waits for the peer's
//! window. A peer that never reads could so make the server hold every
//! response it asks for. The frame therefore counts, per connection and in
//! all, the response data handed to HTTP/2 minus the bytes written to the
//! socket, and refuses new requests while either count is over its limit.
//!
//! The count is close, not exact: frame headers and trailers are written
//! without having been counted as made, and data HTTP/2 discards for a
//! reset stream is never written. Both only make the count lag behind, and
//! it never goes below zero.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Status, body::Body};

/// The unread bytes of every connection together, and the limits.
#[derive(Debug)]
pub struct UnreadBytes {
    total: AtomicUsize,
    max_total: usize,
    max_per_connection: usize,
}

impl UnreadBytes {
    /// No unread bytes yet, with these limits.
    pub fn new(max_total: usize, max_per_connection: usize) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(0),
            max_total,
            max_per_connection,
        })
    }

    /// The count of one new connection.
    pub fn connection(self: &Arc<Self>) -> ConnectionUnread {
        ConnectionUnread {
            unread: AtomicUsize::new(0),
            all: self.clone(),
        }
    }

    /// Unread bytes of every connection together.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// The unread bytes of one connection; they leave the total when the
/// connection closes.
#[derive(Debug)]
pub struct ConnectionUnread {
    unread: AtomicUsize,
    all: Arc<UnreadBytes>,
}

impl ConnectionUnread {
    /// `bytes` of response data were handed to HTTP/2.
    pub fn made(&self, bytes: usize) {
        self.unread.fetch_add(bytes, Ordering::Relaxed);
        self.all.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `bytes` were written to the socket.
    pub fn written(&self, bytes: usize) {
        let taken = take_at_most(&self.unread, bytes);
        take_at_most(&self.all.total, taken);
    }

    /// Unread bytes of this connection.
    pub fn unread(&self) -> usize {
        self.unread.load(Ordering::Relaxed)
    }

    /// Whether a new request may start: RESOURCE_EXHAUSTED while this peer
    /// leaves too much unread (it is the cause, and reading is the cure),
    /// UNAVAILABLE while all peers together do (another replica may serve).
    pub fn admit(&self) -> Result<(), Status> {
        let unread = self.unread();
        if unread > self.all.max_per_connection {
            return Err(Status::resource_exhausted(format!(
                "{unread} bytes of earlier responses on this connection are still unread (limit NINAIVALAIGAL_MAX_UNREAD_BYTES_PER_CONNECTION = {}); read the responses before sending more requests",
                self.all.max_per_connection
            )));
        }
        let total = self.all.total();
        if total > self.all.max_total {
            return Err(Status::unavailable(format!(
                "the server holds {total} bytes of responses its clients have not read (limit NINAIVALAIGAL_MAX_UNREAD_BYTES = {}); retry with backoff",
                self.all.max_total
            )));
        }
        Ok(())
    }
}

impl Drop for ConnectionUnread {
    fn drop(&mut self) {
        take_at_most(&self.all.total, *self.unread.get_mut());
    }
}

/// A response body that counts its data as made on its connection when
/// HTTP/2 takes it.
pub struct CountedBody {
    inner: Body,
    unread: Arc<ConnectionUnread>,
}

impl CountedBody {
    /// `inner`, counted on `unread`.
    pub fn new(inner: Body, unread: Arc<ConnectionUnread>) -> Self {
        Self { inner, unread }
    }
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.unread.made(data.len());
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

/// Subtracts up to `bytes` from `count` without going below zero; returns
/// what was subtracted.
fn take_at_most(count: &AtomicUsize, bytes: usize) -> usize {
    let before = count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
            Some(now.saturating_sub(bytes))
        })
        .unwrap_or_else(|now| now);
    before.min(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pay_off_what_was_made_and_never_below_zero() {
        let all = UnreadBytes::new(100, 50);
        let first = all.connection();
        let second = all.connection();
        first.made(40);
        second.made(30);
        assert_eq!(all.total(), 70);
        // Frame headers are written but were never counted as made.
        first.written(45);
        assert_eq!(first.unread(), 0);
        assert_eq!(all.total(), 30);
        drop(second);
        assert_eq!(all.total(), 0);
    }

    #[test]
    fn a_connection_over_its_limit_is_told_to_read_and_a_full_server_to_retry() {
        let all = UnreadBytes::new(100, 50);
        let reader = all.connection();
        let hoarder = all.connection();
        hoarder.made(51);
        let refused = hoarder.admit().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("NINAIVALAIGAL_MAX_UNREAD_BYTES_PER_CONNECTION")
        );
        reader.admit().unwrap();

        let another = all.connection();
        another.made(50);
        let refused = reader.admit().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(
            refused
                .message()
                .contains("NINAIVALAIGAL_MAX_UNREAD_BYTES ")
        );
        drop(hoarder);
        reader.admit().unwrap();
    }
}
