//! The memory-service: recording contexts and memories, served only to callers
//! with a valid access token and isolated per user by PostgreSQL row-level
//! security.

pub mod auth;
pub mod budget;
pub mod config;
pub mod db;
pub mod error;
pub mod exports;
pub mod input;
pub mod jwks;
pub mod offload;
pub mod paging;
pub mod quota;
pub mod recall;
pub mod revocation;
pub mod rpc;
pub mod scope;
pub mod startup;
pub mod writes;
