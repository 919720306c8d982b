//! Typed settings of the memory-service, from `NINAIVALAIGAL_*` environment
//! variables or the matching flags (`memory-service --help`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use ninaivalaigal::settings::Seconds;
use ninaivalaigal::{
    db::DatabaseSettings,
    server::{MetricsSettings, TransportSettings},
    telemetry::LogSettings,
    token::JwtSettings,
};

/// Ninaivalaigal memory-service: recording contexts and memories.
///
/// Access tokens are verified with the auth-service's public keys, fetched
/// from its GetJwks RPC at `NINAIVALAIGAL_AUTH_URL` (over TLS when it is
/// `https://`, checked against `NINAIVALAIGAL_AUTH_CA`), or, when
/// `NINAIVALAIGAL_JWT_SECRET` is set, with that shared HS256 secret.
#[derive(Clone, Debug, clap::Parser)]
#[command(version)]
pub struct Settings {
    /// Address to serve gRPC on.
    #[arg(long, env = "NINAIVALAIGAL_MEMORY_LISTEN_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], ninaivalaigal::DEFAULT_MEMORY_PORT)))]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub transport: TransportSettings,

    #[command(flatten)]
    pub metrics: MetricsSettings,

    #[command(flatten)]
    pub jwt: JwtSettings,

    #[command(flatten)]
    pub log: LogSettings,

    /// URL of the auth-service, whose GetJwks RPC serves the public keys
    /// that verify access tokens (EdDSA mode). `https://` for TLS; `http://`
    /// only to a loopback address or with NINAIVALAIGAL_ALLOW_PLAINTEXT
    /// (whoever can change the keys in transit can forge any token).
    #[arg(long, env = "NINAIVALAIGAL_AUTH_URL", default_value_t = format!("http://127.0.0.1:{}", ninaivalaigal::DEFAULT_AUTH_PORT))]
    pub auth_url: String,

    /// PEM file of the CA that signed the auth-service's certificate
    /// (`https://` NINAIVALAIGAL_AUTH_URL); without it, the system's CAs.
    #[arg(long, env = "NINAIVALAIGAL_AUTH_CA")]
    pub auth_ca: Option<PathBuf>,

    /// PEM certificate this service presents to the auth-service when that
    /// asks for client certificates (its NINAIVALAIGAL_TLS_CLIENT_CA); with
    /// NINAIVALAIGAL_AUTH_CLIENT_KEY.
    #[arg(long, env = "NINAIVALAIGAL_AUTH_CLIENT_CERT")]
    pub auth_client_cert: Option<PathBuf>,

    /// Private key of NINAIVALAIGAL_AUTH_CLIENT_CERT (PEM).
    #[arg(long, env = "NINAIVALAIGAL_AUTH_CLIENT_KEY")]
    pub auth_client_key: Option<PathBuf>,

    /// Seconds between fetches of the auth-service's public keys (a token
    /// signed by an unknown key also triggers a fetch, at most every few seconds).
    #[arg(
        long,
        env = "NINAIVALAIGAL_JWKS_REFRESH_SECONDS",
        default_value = "300"
    )]
    pub jwks_refresh_seconds: Seconds,

    /// Seconds between reads of the revoked-session list; a revoked access
    /// token stops working within this time. Fractions are allowed.
    #[arg(
        long,
        env = "NINAIVALAIGAL_REVOCATION_POLL_SECONDS",
        default_value = "5"
    )]
    pub revocation_poll_seconds: Seconds,

    /// Largest memory accepted, in bytes of JSON.
    #[arg(long, env = "NINAIVALAIGAL_MAX_MEMORY_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub max_memory_bytes: u32,

    /// Most bytes of memories one Recall response holds, counted as their
    /// encoded size (at least one memory is always returned). A page that
    /// reaches it ends early with a `next_page_token`, so nothing is lost.
    /// The default stays under the 4 MiB that gRPC clients accept by default.
    #[arg(long, env = "NINAIVALAIGAL_MAX_RESPONSE_BYTES", default_value_t = 3 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_response_bytes: u32,

    /// Most memories one user may keep; Remember beyond it is refused with
    /// RESOURCE_EXHAUSTED until the user forgets some.
    #[arg(long, env = "NINAIVALAIGAL_MAX_MEMORIES_PER_USER", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub max_memories_per_user: u64,

    /// Most bytes of memory JSON one user may keep, all memories together;
    /// Remember beyond it is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "NINAIVALAIGAL_MAX_MEMORY_BYTES_PER_USER", default_value_t = 1 << 30,
          value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub max_memory_bytes_per_user: u64,

    /// Most memories in one RememberMany or ImportMemories call (and most
    /// contexts in one ImportMemories call); more is INVALID_ARGUMENT.
    #[arg(long, env = "NINAIVALAIGAL_MAX_BATCH_MEMORIES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_batch_memories: u32,

    /// Largest RememberMany or ImportMemories request, in bytes of the
    /// encoded message; a larger one is refused as it arrives
    /// (INVALID_ARGUMENT). Never less than what one memory needs.
    #[arg(long, env = "NINAIVALAIGAL_MAX_BATCH_BYTES", default_value_t = 4 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch_bytes: u32,

    /// Most exports running at once (each holds a database connection while
    /// its client reads); more is RESOURCE_EXHAUSTED. One per user always.
    #[arg(long, env = "NINAIVALAIGAL_MAX_CONCURRENT_EXPORTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_exports: u32,

    /// Longest an export may stream, in seconds; then it ends with
    /// DEADLINE_EXCEEDED.
    #[arg(
        long,
        env = "NINAIVALAIGAL_EXPORT_TIMEOUT_SECONDS",
        default_value = "600"
    )]
    pub export_timeout_seconds: Seconds,
}

impl Settings {
    /// Clock leeway for token checks.
    pub fn jwt_leeway(&self) -> Duration {
        self.jwt.leeway()
    }

    /// Largest Remember request accepted: room for any memory within the
    /// limit in its protobuf form. A `Struct` is at worst 5.5 times its JSON
    /// (`[0,0,...]`: 2 bytes of JSON, 11 of protobuf per number), so 6 times
    /// plus room for the other fields lets every valid memory through; a
    /// larger request is refused naming the memory limit.
    pub fn max_request_bytes(&self) -> usize {
        (self.max_memory_bytes as usize).saturating_mul(6) + 64 * 1024
    }

    /// Largest batch request accepted: the setting, but never less than one
    /// memory's request.
    pub fn max_batch_request_bytes(&self) -> usize {
        (self.max_batch_bytes as usize).max(self.max_request_bytes())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(extra: &[&str]) -> Result<Settings, clap::Error> {
        let mut args = vec!["memory-service", "--database-url=postgres://u:p@h/db"];
        args.extend_from_slice(extra);
        Settings::try_parse_from(args)
    }

    #[test]
    fn defaults() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.auth_url, "http://127.0.0.1:13371");
        assert_eq!(settings.revocation_poll_seconds.0, Duration::from_secs(5));
        assert_eq!(settings.max_memory_bytes, 65536);
        assert_eq!(settings.max_response_bytes, 3 * 1024 * 1024);
        assert_eq!(settings.max_memories_per_user, 100_000);
        assert_eq!(settings.max_memory_bytes_per_user, 1 << 30);
        assert_eq!(settings.max_batch_memories, 100);
        assert_eq!(settings.max_batch_request_bytes(), 4 * 1024 * 1024);
        assert_eq!(settings.max_concurrent_exports, 4);
        assert_eq!(settings.export_timeout_seconds.0, Duration::from_secs(600));
        assert!(settings.jwt.secret.is_none());
    }

    #[test]
    fn limits_must_be_positive() {
        for bad in [
            "--max-response-bytes=0",
            "--max-memories-per-user=0",
            "--max-memory-bytes-per-user=0",
            "--max-memory-bytes-per-user=-1",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
        let settings = parse(&["--max-memories-per-user=3"]).unwrap();
        assert_eq!(settings.max_memories_per_user, 3);
    }

    #[test]
    fn poll_interval_may_be_a_fraction() {
        let settings = parse(&["--revocation-poll-seconds=0.2"]).unwrap();
        assert_eq!(
            settings.revocation_poll_seconds.0,
            Duration::from_millis(200)
        );
        assert!(parse(&["--revocation-poll-seconds=0"]).is_err());
    }

    #[test]
    fn secret_is_hidden_and_must_be_long() {
        let secret = "s".repeat(40);
        let settings = parse(&[&format!("--jwt-secret={secret}")]).unwrap();
        assert!(!format!("{settings:?}").contains(&secret));
        assert!(parse(&["--jwt-secret=short"]).is_err());
    }
}
