//! The memory-service: recording contexts and memories, served only to callers
//! with a valid access token and isolated per user by PostgreSQL row-level
//! security.

pub mod config;
pub mod rpc;
pub mod startup;
