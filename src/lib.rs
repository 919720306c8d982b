//! The shared kernel of Ninaivalaigal: the gRPC contracts generated from
//! `proto/`, the access-token claims and their verification, the request
//! pieces every service reads the same way (bearer tokens, timestamps, page
//! sizes and page tokens), the plumbing every binary shares (settings,
//! telemetry, shutdown) and, with the `server` feature, the frame both
//! services are served in. Nothing here depends on a service.

#![warn(missing_docs)]

pub mod balance;
pub mod bearer;
pub mod json;
pub mod paging;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod timestamp;
pub mod tls;
pub mod token;
mod token_cache;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "metrics")]
pub mod metrics;

#[cfg(feature = "db")]
pub mod db;
/// The diesel schema of every table, generated from `migrations/` by
/// `deploy/local/schema.sh` (`diesel print-schema`, settings in `diesel.toml`);
/// `deploy/local/test.sh` fails when it no longer matches the migrations.
#[cfg(feature = "db")]
#[rustfmt::skip]
#[allow(missing_docs)]
pub mod schema;

/// Code generated from `proto/`; modules mirror the protobuf packages
/// (`proto::ninaivalaigal::memory::v1`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));

    /// Encoded `FileDescriptorSet` of every contract, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ninaivalaigal_descriptor.bin"));
}

pub use proto::ninaivalaigal::{auth::v1 as auth_v1, memory::v1 as memory_v1};

/// Default port of the memory-service.
pub const DEFAULT_MEMORY_PORT: u16 = 13370;
/// Default port of the auth-service.
pub const DEFAULT_AUTH_PORT: u16 = 13371;
