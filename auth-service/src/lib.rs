//! The auth-service: the only part of Ninaivalaigal that sees passwords and
//! signs access tokens.

pub mod config;
pub mod rpc;
pub mod startup;
