//! Typed settings of the memory-service, from `NINAIVALAIGAL_*` environment
//! variables or the matching flags (`memory-service --help`).

use std::net::SocketAddr;

use ninaivalaigal::{db::DatabaseSettings, telemetry::LogFormat};

/// Ninaivalaigal memory-service: recording contexts and memories.
#[derive(Clone, Debug, clap::Parser)]
#[command(version)]
pub struct Settings {
    /// Address to serve gRPC on.
    #[arg(long, env = "NINAIVALAIGAL_MEMORY_LISTEN_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], ninaivalaigal::DEFAULT_MEMORY_PORT)))]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Log line format.
    #[arg(long, env = "NINAIVALAIGAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
