//! The transport settings both services take the same way: how many
//! connections, streams and requests they hold at once, and for how long.
//! Everything a client can make the server hold is bounded here.

use std::{path::PathBuf, time::Duration};

use crate::settings::Seconds;

/// Largest header block of one request (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).
/// gRPC requests carry a few short headers; a bearer token is under 1 KiB.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Request data one connection may have in flight before the server has
/// read it (HTTP/2 connection window): the most an unauthenticated
/// connection can make the server buffer.
pub const CONNECTION_WINDOW_BYTES: u32 = 512 * 1024;
/// The same, per stream (HTTP/2 initial stream window).
pub const STREAM_WINDOW_BYTES: u32 = 256 * 1024;
/// Streams a client may reset before the server has answered them, and
/// streams the server may reset for protocol errors, before the connection
/// is closed (the "rapid reset" attacks; hyper's caps, which tonic turns off
/// unless they are set).
pub const MAX_RESET_STREAMS: usize = 32;
/// How long a connection that reached its maximum age may finish its
/// requests before it is closed.
pub const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

/// Transport limits and timeouts, flattened into each service's settings.
#[derive(Clone, Debug, clap::Args)]
pub struct TransportSettings {
    /// Most client connections held open at once; further connections are
    /// closed as soon as they are accepted.
    #[arg(long, env = "NINAIVALAIGAL_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most concurrent RPCs (HTTP/2 streams) on one connection.
    #[arg(long, env = "NINAIVALAIGAL_MAX_STREAMS_PER_CONNECTION", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,

    /// Most RPCs handled at once across all connections. Beyond it a request
    /// is refused at once with UNAVAILABLE (retry with backoff) instead of
    /// queueing without bound. Health checks are exempt.
    #[arg(long, env = "NINAIVALAIGAL_MAX_IN_FLIGHT_REQUESTS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight_requests: u32,

    /// Most bytes of earlier responses one connection may leave unread
    /// (HTTP/2 flow control holds them in the server) before its further
    /// requests are refused with RESOURCE_EXHAUSTED. Above the largest
    /// single response (`NINAIVALAIGAL_MAX_RESPONSE_BYTES`).
    #[arg(
        long,
        env = "NINAIVALAIGAL_MAX_UNREAD_BYTES_PER_CONNECTION",
        default_value_t = 16 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_unread_bytes_per_connection: u64,

    /// Most bytes of responses all clients together may leave unread before
    /// further requests are refused with UNAVAILABLE: with the per-request
    /// limits, what bounds the memory that clients which do not read can
    /// make the server hold.
    #[arg(
        long,
        env = "NINAIVALAIGAL_MAX_UNREAD_BYTES",
        default_value_t = 128 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_unread_bytes: u64,

    /// Longest time one RPC may take, reading its request included; a
    /// shorter `grpc-timeout` from the client wins. Database statements of
    /// the request are cancelled at the same deadline.
    #[arg(
        long,
        env = "NINAIVALAIGAL_REQUEST_TIMEOUT_SECONDS",
        default_value = "30"
    )]
    pub request_timeout_seconds: Seconds,

    /// A connection from which nothing at all arrives for this long (no
    /// request, no answer to the server's keepalive pings, not even the
    /// HTTP/2 preface) is closed; so is one whose responses wait unread
    /// while nothing can be written to it for this long.
    #[arg(
        long,
        env = "NINAIVALAIGAL_CONNECTION_IDLE_SECONDS",
        default_value = "60"
    )]
    pub connection_idle_seconds: Seconds,

    /// Interval of the server's HTTP/2 keepalive pings; a peer that does not
    /// answer one within `NINAIVALAIGAL_KEEPALIVE_TIMEOUT_SECONDS` is dropped,
    /// so half-open connections do not linger.
    #[arg(long, env = "NINAIVALAIGAL_KEEPALIVE_SECONDS", default_value = "20")]
    pub keepalive_seconds: Seconds,

    /// How long the server waits for the answer to a keepalive ping.
    #[arg(
        long,
        env = "NINAIVALAIGAL_KEEPALIVE_TIMEOUT_SECONDS",
        default_value = "10"
    )]
    pub keepalive_timeout_seconds: Seconds,

    /// Connections are asked to close (HTTP/2 GOAWAY) after this long, so
    /// that clients spread over replicas again and no connection, idle or
    /// not, lives for ever. Clients reconnect without failing a request.
    #[arg(
        long,
        env = "NINAIVALAIGAL_MAX_CONNECTION_AGE_SECONDS",
        default_value = "1800"
    )]
    pub max_connection_age_seconds: Seconds,

    /// Seconds between the readiness checks behind the gRPC health status
    /// (NOT_SERVING while, for example, the database is unreachable).
    #[arg(long, env = "NINAIVALAIGAL_HEALTH_CHECK_SECONDS", default_value = "5")]
    pub health_check_seconds: Seconds,

    /// TLS, or plaintext where allowed.
    #[command(flatten)]
    pub tls: TlsSettings,
}

/// How the service's gRPC port is secured. TLS when a certificate and key
/// are given; plaintext only on a loopback address or when
/// `NINAIVALAIGAL_ALLOW_PLAINTEXT` says so (for example behind a mesh that
/// encrypts for the service).
#[derive(Clone, Debug, clap::Args)]
pub struct TlsSettings {
    /// PEM file of the server's certificate chain (leaf first). Re-read when
    /// it changes, without a restart.
    #[arg(long, env = "NINAIVALAIGAL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the certificate's private key. Re-read when it changes.
    #[arg(long, env = "NINAIVALAIGAL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM file of the CAs that sign client certificates. When set, every
    /// client must present a certificate signed by one of them (mTLS).
    #[arg(long, env = "NINAIVALAIGAL_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve plaintext gRPC on a non-loopback address (without a
    /// certificate). Meant for a network that is encrypted by other means;
    /// logged as a warning at start-up.
    #[arg(long, env = "NINAIVALAIGAL_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,

    /// Longest a client may take over the TLS handshake; a connection that
    /// has not completed it by then is closed.
    #[arg(
        long,
        env = "NINAIVALAIGAL_TLS_HANDSHAKE_SECONDS",
        default_value = "10"
    )]
    pub tls_handshake_seconds: Seconds,
}

impl TransportSettings {
    /// Refuses combinations that cannot work, naming the settings.
    pub fn check(&self) -> anyhow::Result<()> {
        let keepalive = self.keepalive_seconds.0 + self.keepalive_timeout_seconds.0;
        if self.connection_idle_seconds.0 <= keepalive {
            anyhow::bail!(
                "NINAIVALAIGAL_CONNECTION_IDLE_SECONDS ({}) must be longer than NINAIVALAIGAL_KEEPALIVE_SECONDS plus NINAIVALAIGAL_KEEPALIVE_TIMEOUT_SECONDS ({}), or live clients would be cut off",
                self.connection_idle_seconds,
                keepalive.as_secs_f64()
            );
        }
        if self.max_unread_bytes_per_connection > self.max_unread_bytes {
            anyhow::bail!(
                "NINAIVALAIGAL_MAX_UNREAD_BYTES_PER_CONNECTION ({}) must not exceed NINAIVALAIGAL_MAX_UNREAD_BYTES ({})",
                self.max_unread_bytes_per_connection,
                self.max_unread_bytes
            );
        }
        Ok(())
    }

    /// The longest an RPC may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout_seconds.0
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Test {
        #[command(flatten)]
        transport: TransportSettings,
    }

    fn parse(args: &[&str]) -> Result<TransportSettings, clap::Error> {
        Test::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map(|test| test.transport)
    }

    #[test]
    fn defaults_are_bounded_and_consistent() {
        let settings = parse(&[]).unwrap();
        settings.check().unwrap();
        assert_eq!(settings.max_streams_per_connection, 32);
        assert_eq!(settings.request_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn idle_timeout_must_outlast_keepalive() {
        let settings = parse(&["--connection-idle-seconds=15"]).unwrap();
        let error = settings.check().unwrap_err().to_string();
        assert!(
            error.contains("NINAIVALAIGAL_CONNECTION_IDLE_SECONDS"),
            "{error}"
        );
        assert!(parse(&["--max-streams-per-connection=0"]).is_err());
    }
}
