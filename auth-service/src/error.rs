//! The auth-service's one error type, and its one conversion to a gRPC status.
//! Messages of client errors say what to fix; internal causes are logged here
//! and never sent.

use std::{fmt, time::Duration};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use ninaivalaigal::{bearer::BearerError, paging::PagingError, token::TokenError};
use tonic::{Code, Status, metadata::MetadataValue};

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a policy.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Credentials or tokens are missing, wrong, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// Allowed in general, but not in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many attempts of one kind; try again after the given time.
    #[error("too many {0}; try again in {seconds} seconds", seconds = retry_after_secs(.1))]
    Throttled(Attempts, Duration),
    /// The service is overloaded or the database unreachable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] DieselError),
    /// No database connection could be had.
    #[error("database connection pool: {0}")]
    Pool(#[from] bb8::RunError<diesel_async::pooled_connection::PoolError>),
    /// Anything else that is our fault.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// What a throttle counted too many of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempts {
    /// Logins with a wrong password (or an unknown email).
    FailedLogins,
    /// Registrations from one client.
    Registrations,
}

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FailedLogins => "failed login attempts",
            Self::Registrations => "registrations from this address",
        })
    }
}

/// Result of the auth-service's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn retry_after_secs(after: &Duration) -> u64 {
    // Round up: "try again in 0 seconds" would invite an immediate retry.
    after.as_secs() + u64::from(after.subsec_nanos() > 0)
}

impl From<BearerError> for Error {
    fn from(error: BearerError) -> Self {
        Self::Unauthenticated(error.to_string())
    }
}

impl From<PagingError> for Error {
    fn from(error: PagingError) -> Self {
        if error.is_client_error() {
            Self::InvalidArgument(error.to_string())
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        Self::Unauthenticated(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(message) => Status::invalid_argument(message),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::NotFound(message) => Status::not_found(message),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Throttled(_, after) => {
                let seconds = retry_after_secs(&after);
                let mut status = Status::new(Code::ResourceExhausted, error.to_string());
                // The same hint for machines, as an HTTP-style retry-after header.
                status
                    .metadata_mut()
                    .insert("retry-after", MetadataValue::from(seconds));
                status
            }
            Error::Database(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Status::already_exists("it exists already")
            }
            Error::Database(DieselError::NotFound) => Status::not_found("not found"),
            Error::Database(cause) if ninaivalaigal::db::is_connection_lost(&cause) => {
                tracing::warn!(error = %cause, "database connection lost during a request");
                Status::unavailable("the database is unavailable; try again shortly")
            }
            Error::Pool(cause) => {
                tracing::error!(error = %cause, "no database connection");
                Status::unavailable("the database is unavailable; try again shortly")
            }
            Error::Database(_) | Error::Internal(_) => {
                tracing::error!(error = %error, "internal error");
                Status::internal("internal error; it has been logged")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_says_when_to_retry() {
        let status = Status::from(Error::Throttled(
            Attempts::FailedLogins,
            Duration::from_millis(2500),
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .starts_with("too many failed login attempts")
        );
        assert!(
            status.message().contains("3 seconds"),
            "{}",
            status.message()
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "3");
        let status = Status::from(Error::Throttled(
            Attempts::Registrations,
            Duration::from_secs(60),
        ));
        assert!(
            status
                .message()
                .starts_with("too many registrations from this address; try again in 60 seconds")
        );
    }

    #[test]
    fn internal_details_are_not_sent() {
        let status = Status::from(Error::Internal(anyhow::anyhow!("secret detail")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret detail"));
    }
}
