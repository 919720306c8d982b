//! The auth-service: the only part of Ninaivalaigal that sees passwords and
//! signs access tokens.

pub mod admins;
pub mod audit;
pub mod client;
pub mod config;
pub mod db;
pub mod erasure;
pub mod error;
pub mod hashing_priority;
pub mod housekeeping;
pub mod input;
pub mod keys;
pub mod metrics;
pub mod passwords;
pub mod rpc;
pub mod sessions;
pub mod startup;
pub mod throttle;
pub mod tokens;
