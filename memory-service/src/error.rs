//! The memory-service's one error type, and its one conversion to a gRPC
//! status. Client errors say what to fix; internal causes are logged here
//! and never sent.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use ninaivalaigal::{bearer::BearerError, paging::PagingError};
use tonic::Status;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a limit.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing named does not exist (for this caller).
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request needs a state that does not hold (e.g. nothing recording).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No valid access token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A dependency (database, auth-service) cannot be reached; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A per-user quota is used up; the message names it and the way out.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request's deadline passed while the database worked on it.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] DieselError),
    /// Our own fault (e.g. a stored row we cannot read); logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// No database connection could be had.
    #[error("database connection pool: {0}")]
    Pool(#[from] bb8::RunError<diesel_async::pooled_connection::PoolError>),
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
            Self::Internal(error.to_string())
        }
    }
}

impl Error {
    /// The same error, its message starting with the place in the request
    /// it concerns (`memories[3]: ...`), so a client can tell which item of
    /// a batch to fix. Errors that are not the client's stay as they are.
    pub fn at(self, field: &str, index: usize) -> Self {
        let place = |message: String| format!("{field}[{index}]: {message}");
        match self {
            Self::InvalidArgument(message) => Self::InvalidArgument(place(message)),
            Self::NotFound(message) => Self::NotFound(place(message)),
            Self::AlreadyExists(message) => Self::AlreadyExists(place(message)),
            Self::FailedPrecondition(message) => Self::FailedPrecondition(place(message)),
            Self::ResourceExhausted(message) => Self::ResourceExhausted(place(message)),
            other => other,
        }
    }
}

/// Result of the memory-service's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &Error) -> bool {
    matches!(
        error,
        Error::Database(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(message) => Status::invalid_argument(message),
            Error::NotFound(message) => Status::not_found(message),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
            Error::Database(DieselError::NotFound) => Status::not_found("not found"),
            Error::Database(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Status::already_exists("it exists already")
            }
            Error::Database(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                info,
            )) => {
                // The account or the context went away while the request ran.
                tracing::info!(detail = info.message(), "foreign key violation");
                Status::failed_precondition(
                    "the context or the account was deleted while this request ran",
                )
            }
            Error::Database(error) if ninaivalaigal::db::is_connection_lost(&error) => {
                tracing::warn!(%error, "database connection lost during a request");
                Status::unavailable("the database is unreachable; try again shortly")
            }
            Error::Database(error) => {
                tracing::error!(%error, "database error");
                Status::internal("internal error")
            }
            Error::Pool(bb8::RunError::TimedOut) => {
                tracing::warn!("no database connection available in time");
                Status::unavailable("the database is busy or unreachable; try again shortly")
            }
            Error::Pool(bb8::RunError::User(error)) => {
                tracing::warn!(%error, "cannot connect to the database");
                Status::unavailable("the database is unreachable; try again shortly")
            }
        }
    }
}
