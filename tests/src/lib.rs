//! The harness the end-to-end tests share.
//!
//! - [`TestDb`]: a fresh, migrated database per test, cloned from a template
//!   that is built once per schema version, and dropped when the test ends.
//! - [`spawn_pair`]: the auth-service and the memory-service on real sockets
//!   (port 0), connected to that database as their own non-owner roles, so
//!   row-level security in tests is exactly as in production. The
//!   auth-service signs with an Ed25519 key generated per test process
//!   ([`keys::harness_key`]) and hashes at bcrypt cost 4.
//! - [`TestPair::register_user`] and [`bearer`]: accounts and authenticated
//!   calls; [`keys::mint`] and friends: tokens the auth-service would never
//!   issue (expired, wrong audience, other key, `alg: none`).
//! - [`auth_rows`]: the revocation list and audit trail, read as the auth role.
//! - [`TestPair::memory_as`]: memory-service calls as a user ([`memory`]).
//! - [`eventually`]: waits for something that happens in the background
//!   (a revocation poll, a key fetch), naming it when it never does.
//! - [`PrivateCluster`]: a PostgreSQL server of a test's own, for tests
//!   that kill, restart or cut off the database server (never the shared one).
//! - [`metrics::scrape`]: a service's Prometheus endpoint, read as a
//!   Prometheus server would and parsed into series.
//! - [`PairSettings`]: a test's changes to the services' typed settings,
//!   applied after the harness's own ([`pair::auth_settings`],
//!   [`pair::memory_settings`]), and the TLS its clients use
//!   ([`PairSettings::client_tls`], with certificates from [`tls::TestCa`]).
//!
//! Logs: the services' `tracing` output goes through libtest's capture, so a
//! failing test shows it after its panic message ([`logs`]). `TEST_LOG`
//! sets the level: unset for warnings and errors, `TEST_LOG=1` for debug, or
//! a filter such as `TEST_LOG=memory_service=trace`.
//!
//! PostgreSQL comes from `deploy/local/postgres.sh`, which the harness runs
//! itself when the server is not reachable, so `cargo test` works on a
//! machine where nothing was started by hand.

#![warn(missing_docs)]

pub mod auth_rows;
pub mod cluster;
pub mod db;
mod eventually;
pub mod faults;
pub mod keys;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod pair;
pub mod private_cluster;
pub mod raw_h2;
pub mod tls;
pub mod users;

pub use db::TestDb;
pub use eventually::{Outcome, eventually};
pub use pair::{PairSettings, TestPair, spawn_pair, spawn_pair_with};
pub use private_cluster::PrivateCluster;
pub use users::{TEST_PASSWORD, TestUser, bearer};
