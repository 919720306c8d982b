//! Typed settings of the auth-service, from `NINAIVALAIGAL_*` environment
//! variables or the matching flags (`auth-service --help`).

use std::net::SocketAddr;

use ninaivalaigal::{db::DatabaseSettings, telemetry::LogFormat};

/// Ninaivalaigal auth-service: registers users, logs them in, issues tokens.
#[derive(Clone, Debug, clap::Parser)]
#[command(version)]
pub struct Settings {
    /// Address to serve gRPC on.
    #[arg(long, env = "NINAIVALAIGAL_AUTH_LISTEN_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], ninaivalaigal::DEFAULT_AUTH_PORT)))]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Log line format.
    #[arg(long, env = "NINAIVALAIGAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
