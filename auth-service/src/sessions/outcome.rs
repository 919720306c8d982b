//! What a session operation came to, as the caller will be told: refusals
//! are ordinary outcomes (a refresh's reuse revocation must still commit),
//! and turn into the service's error only at the end.

use crate::{db::models::User, error::Error};

use super::IssuedSession;

/// The one answer for a wrong password and an unknown email.
const BAD_CREDENTIALS: &str = "email or password is incorrect";
const ACCOUNT_DISABLED: &str = "this account has been disabled; contact an administrator";
const UNKNOWN_REFRESH_TOKEN: &str = "refresh token is not valid; log in again";

/// What a login with a checked password came to. (No `Debug`: it holds tokens.)
pub enum LoginOutcome {
    /// A session was opened for the account (boxed: the refusals are small).
    LoggedIn {
        user: Box<User>,
        session: IssuedSession,
    },
    /// No session was opened.
    Refused(LoginRefusal),
}

/// Why a login opened no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Wrong password or unknown email: the client cannot tell which.
    BadCredentials,
    /// The password was right, but the account is disabled.
    AccountDisabled,
}

impl From<LoginRefusal> for Error {
    fn from(refusal: LoginRefusal) -> Self {
        match refusal {
            LoginRefusal::BadCredentials => Self::Unauthenticated(BAD_CREDENTIALS.into()),
            LoginRefusal::AccountDisabled => Self::PermissionDenied(ACCOUNT_DISABLED.into()),
        }
    }
}

/// What presenting a refresh token came to. (No `Debug`: it holds tokens.)
pub enum RefreshOutcome {
    /// The token was spent and the session's next tokens issued.
    Rotated(IssuedSession),
    /// No tokens were issued.
    Refused(RefreshRefusal),
}

/// Why a refresh issued no tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// No such token.
    UnknownToken,
    /// The token was spent already; its session is now revoked.
    Reused,
    /// The session was revoked (logout, admin action, earlier reuse).
    SessionRevoked,
    /// The session outlived its refresh lifetime.
    SessionExpired,
    /// The account was disabled.
    AccountDisabled,
}

impl RefreshRefusal {
    /// The reason recorded in the audit trail.
    pub fn audit_reason(self) -> &'static str {
        match self {
            Self::UnknownToken => "unknown_token",
            Self::Reused => "refresh_token_reuse",
            Self::SessionRevoked => "session_revoked",
            Self::SessionExpired => "session_expired",
            Self::AccountDisabled => "account_disabled",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::UnknownToken => UNKNOWN_REFRESH_TOKEN,
            Self::Reused => {
                "refresh token was already used; its session has been revoked as a precaution, \
                 log in again"
            }
            Self::SessionRevoked => "this session has ended; log in again",
            Self::SessionExpired => "refresh token has expired; log in again",
            Self::AccountDisabled => ACCOUNT_DISABLED,
        }
    }
}

impl From<RefreshRefusal> for Error {
    fn from(refusal: RefreshRefusal) -> Self {
        Self::Unauthenticated(refusal.message().into())
    }
}

/// What a logout came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The session is revoked (now, or it was already).
    Ended,
    /// The refresh token names no session.
    UnknownToken,
}

impl LogoutOutcome {
    /// `Ok` when the session ended; the client's error otherwise.
    pub fn into_result(self) -> Result<(), Error> {
        match self {
            Self::Ended => Ok(()),
            Self::UnknownToken => Err(Error::Unauthenticated("refresh token is not valid".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    fn status(error: impl Into<Error>) -> Status {
        Status::from(error.into())
    }

    #[test]
    fn a_disabled_account_is_denied_at_login_but_unauthenticated_at_refresh() {
        let login = status(LoginRefusal::AccountDisabled);
        let refresh = status(RefreshRefusal::AccountDisabled);
        assert_eq!(login.code(), Code::PermissionDenied);
        assert_eq!(refresh.code(), Code::Unauthenticated);
        assert_eq!(login.message(), refresh.message());
    }

    #[test]
    fn wrong_credentials_say_nothing_about_which_was_wrong() {
        let status = status(LoginRefusal::BadCredentials);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), BAD_CREDENTIALS);
    }

    #[test]
    fn every_refresh_refusal_asks_to_log_in_again_or_names_the_account() {
        for refusal in [
            RefreshRefusal::UnknownToken,
            RefreshRefusal::Reused,
            RefreshRefusal::SessionRevoked,
            RefreshRefusal::SessionExpired,
        ] {
            let status = status(refusal);
            assert_eq!(status.code(), Code::Unauthenticated);
            assert!(status.message().ends_with("log in again"), "{refusal:?}");
        }
        assert!(
            status(RefreshRefusal::Reused)
                .message()
                .contains("has been revoked")
        );
    }

    #[test]
    fn an_unknown_logout_token_is_unauthenticated() {
        assert!(LogoutOutcome::Ended.into_result().is_ok());
        let error = LogoutOutcome::UnknownToken
            .into_result()
            .expect_err("refused");
        assert_eq!(Status::from(error).code(), Code::Unauthenticated);
    }
}
