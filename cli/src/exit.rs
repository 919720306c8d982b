//! What can go wrong, as a person or a script sees it: a message, a hint
//! saying what to do next, and a stable exit code.

use std::fmt;

use tonic::{Code, Status};

/// Exit codes, stable across releases (listed in `eM --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything not covered below.
    Other,
    /// 2: the command line or the input was wrong (clap uses 2 as well).
    Usage,
    /// 3: not logged in, wrong password, expired or refused token.
    Auth,
    /// 4: the context or memory does not exist.
    NotFound,
    /// 5: it already exists, or the state does not allow it (e.g. nothing is recording).
    Conflict,
    /// 6: a server could not be reached or did not answer in time.
    Unavailable,
    /// 7: too many attempts; wait and try again.
    Throttled,
}

/// The exit-code table shown at the end of `eM --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other error
  2  usage error (bad arguments or input)
  3  authentication error (not logged in, wrong password, session expired)
  4  not found (no such context or memory)
  5  conflict (already exists, or nothing is recording)
  6  server unavailable (a service cannot be reached)
  7  too many attempts (wait and retry)";

impl Kind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Auth => 3,
            Kind::NotFound => 4,
            Kind::Conflict => 5,
            Kind::Unavailable => 6,
            Kind::Throttled => 7,
        }
    }

    /// A stable name for `--json` error output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Other => "error",
            Kind::Usage => "usage",
            Kind::Auth => "authentication",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::Unavailable => "unavailable",
            Kind::Throttled => "throttled",
        }
    }

    /// The kind of failure a gRPC status means.
    pub fn from_code(code: Code) -> Kind {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Kind::Usage,
            Code::Unauthenticated | Code::PermissionDenied => Kind::Auth,
            Code::NotFound => Kind::NotFound,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => Kind::Conflict,
            Code::Unavailable | Code::DeadlineExceeded => Kind::Unavailable,
            Code::ResourceExhausted => Kind::Throttled,
            _ => Kind::Other,
        }
    }
}

/// Which server a call went to, so messages can name it and its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    /// The memory-service.
    Memory(String),
    /// The auth-service.
    Auth(String),
}

impl Server {
    /// `memory-service` or `auth-service`.
    pub fn name(&self) -> &'static str {
        match self {
            Server::Memory(_) => "memory-service",
            Server::Auth(_) => "auth-service",
        }
    }

    /// The URL the call goes to.
    pub fn url(&self) -> &str {
        match self {
            Server::Memory(url) | Server::Auth(url) => url,
        }
    }

    /// The variable and the flag that choose the URL.
    pub fn setting(&self) -> &'static str {
        match self {
            Server::Memory(_) => "NINAIVALAIGAL_SERVER_URL or --server-url",
            Server::Auth(_) => "NINAIVALAIGAL_AUTH_URL or --auth-url",
        }
    }

    /// The flag that chooses the URL.
    pub fn flag(&self) -> &'static str {
        match self {
            Server::Memory(_) => "--server-url",
            Server::Auth(_) => "--auth-url",
        }
    }
}

/// A failed command: what went wrong and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Decides the exit code.
    pub kind: Kind,
    /// What went wrong.
    pub message: String,
    /// What to do next, when there is something useful to say.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds `hint` when this failure is of `kind` and has no hint yet.
    pub fn hint_if(mut self, kind: Kind, hint: impl Into<String>) -> Self {
        if self.kind == kind && self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// Not logged in at all.
    pub fn not_logged_in() -> Self {
        Self::new(Kind::Auth, "you are not logged in").hint("run `eM login`")
    }

    /// The session can no longer be refreshed.
    pub fn session_expired() -> Self {
        Self::new(Kind::Auth, "your session has expired").hint("run `eM login`")
    }

    /// Turns a gRPC status from `server` into a failure with a useful hint.
    pub fn from_status(status: &Status, server: &Server) -> Self {
        // A status with a source was made on this side from a connection
        // that failed (refused, TLS handshake, not speaking gRPC...), whatever
        // its code; a server's own statuses have none.
        let transport_failure = std::error::Error::source(status).is_some();
        let kind = if transport_failure {
            Kind::Unavailable
        } else {
            Kind::from_code(status.code())
        };
        let detail = status.message();
        match kind {
            Kind::Unavailable => {
                let cause = error_chain(status);
                let failure = Failure::new(
                    kind,
                    format!(
                        "cannot reach the {} at {}: {}",
                        server.name(),
                        server.url(),
                        if cause.is_empty() {
                            "no answer"
                        } else {
                            &cause
                        }
                    ),
                );
                if cause.contains("certificate") {
                    failure.hint(format!(
                        "the {}'s TLS certificate is not trusted; set NINAIVALAIGAL_CA_CERT or --ca-cert to its CA certificate",
                        server.name()
                    ))
                } else {
                    failure.hint(format!(
                        "is the {} running at {}? Set {} to use another address",
                        server.name(),
                        server.url(),
                        server.setting()
                    ))
                }
            }
            Kind::Auth if status.code() == Code::PermissionDenied => {
                Failure::new(kind, non_empty(detail, "permission denied"))
            }
            Kind::Auth => Failure::new(kind, non_empty(detail, "the token was refused"))
                .hint("run `eM login`"),
            Kind::Throttled => Failure::new(kind, non_empty(detail, "too many attempts"))
                .hint("wait a minute and try again"),
            // Internal errors carry no detail worth showing; the service logged it.
            Kind::Other => Failure::new(
                kind,
                format!(
                    "the {} failed ({:?}): {}",
                    server.name(),
                    status.code(),
                    non_empty(detail, "no detail")
                ),
            ),
            _ => Failure::new(kind, non_empty(detail, "request refused")),
        }
    }
}

/// The status message followed by its causes, without repeats.
fn error_chain(status: &Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !status.message().is_empty() {
        parts.push(status.message().to_owned());
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = error.source();
    }
    parts.join(": ")
}

fn non_empty(text: &str, fallback: &str) -> String {
    if text.is_empty() {
        fallback.to_owned()
    } else {
        text.to_owned()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_stable() {
        let kinds = [
            Kind::Other,
            Kind::Usage,
            Kind::Auth,
            Kind::NotFound,
            Kind::Conflict,
            Kind::Unavailable,
            Kind::Throttled,
        ];
        let codes: Vec<u8> = kinds.iter().map(|kind| kind.code()).collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 7]);
        for kind in kinds {
            assert!(
                EXIT_CODES_HELP.contains(&format!("  {}  ", kind.code())),
                "{kind:?} is documented"
            );
        }
    }

    #[test]
    fn grpc_codes_map_to_kinds() {
        assert_eq!(Kind::from_code(Code::Unauthenticated), Kind::Auth);
        assert_eq!(Kind::from_code(Code::PermissionDenied), Kind::Auth);
        assert_eq!(Kind::from_code(Code::NotFound), Kind::NotFound);
        assert_eq!(Kind::from_code(Code::AlreadyExists), Kind::Conflict);
        assert_eq!(Kind::from_code(Code::FailedPrecondition), Kind::Conflict);
        assert_eq!(Kind::from_code(Code::Unavailable), Kind::Unavailable);
        assert_eq!(Kind::from_code(Code::DeadlineExceeded), Kind::Unavailable);
        assert_eq!(Kind::from_code(Code::InvalidArgument), Kind::Usage);
        assert_eq!(Kind::from_code(Code::ResourceExhausted), Kind::Throttled);
        assert_eq!(Kind::from_code(Code::Internal), Kind::Other);
    }

    #[test]
    fn unavailable_names_the_server_and_its_url() {
        let failure = Failure::from_status(
            &Status::unavailable("tcp connect error"),
            &Server::Memory("http://127.0.0.1:9".to_owned()),
        );
        assert_eq!(failure.kind, Kind::Unavailable);
        assert!(
            failure
                .to_string()
                .contains("is the memory-service running at http://127.0.0.1:9?"),
            "{failure}"
        );
    }
}
