//! The decisions of a session's life, as pure functions of what the database
//! holds and the time: no I/O here, so each rule is tested on its own.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{LoginRefusal, RefreshRefusal};
use crate::db::{
    models::{Session, User},
    sessions::Claim,
};

/// What to do with a login whose password has been checked.
#[derive(Debug)]
pub enum LoginVerdict {
    /// Right password, enabled account: open a session.
    Open(User),
    /// Right password, disabled account. Only someone who knows the password
    /// learns that the account is disabled.
    AccountDisabled(User),
    /// The account exists; the password is wrong.
    WrongPassword(User),
    /// No account has the email.
    UnknownEmail,
}

impl LoginVerdict {
    /// The reason recorded in the audit trail, when the login fails.
    pub fn failure_reason(&self) -> Option<&'static str> {
        match self {
            Self::Open(_) => None,
            Self::AccountDisabled(_) => Some("account_disabled"),
            Self::WrongPassword(_) => Some("wrong_password"),
            Self::UnknownEmail => Some("unknown_email"),
        }
    }
}

/// Judges a login from the account the email names (if any) and whether the
/// password matched it.
pub fn judge_login(account: Option<User>, password_matches: bool) -> LoginVerdict {
    match account {
        Some(user) if password_matches && user.disabled_at.is_none() => LoginVerdict::Open(user),
        Some(user) if password_matches => LoginVerdict::AccountDisabled(user),
        Some(user) => LoginVerdict::WrongPassword(user),
        None => LoginVerdict::UnknownEmail,
    }
}

/// Whether an account, read again under lock as its session is opened, may
/// have one: it may have been disabled or deleted since the login read it.
pub fn may_open_session(current: Option<&User>) -> Result<(), LoginRefusal> {
    match current {
        Some(user) if user.disabled_at.is_none() => Ok(()),
        Some(_) => Err(LoginRefusal::AccountDisabled),
        None => Err(LoginRefusal::BadCredentials),
    }
}

/// What to do with a presented refresh token.
#[derive(Debug)]
pub enum RefreshVerdict<'a> {
    /// The token was unused and its session is live: issue the next tokens.
    Rotate {
        session: &'a Session,
        user: &'a User,
    },
    /// A spent token came back, so a copy of it is out there: revoke the
    /// whole session, the legitimate client included.
    RevokeForReuse {
        session_id: Uuid,
        user_id: Option<i64>,
    },
    /// Issue nothing and change nothing. `found` is the token's session and
    /// account, when it has them.
    Refuse {
        refusal: RefreshRefusal,
        found: Option<(&'a Session, &'a User)>,
    },
}

/// Judges a refresh from what spending the token found (`claim`), the
/// token's session and account as they are now (`found`, loaded for the
/// claim's session), and the time.
pub fn judge_refresh<'a>(
    claim: Claim,
    found: Option<&'a (Session, User)>,
    now: DateTime<Utc>,
) -> RefreshVerdict<'a> {
    match claim {
        Claim::Unknown => RefreshVerdict::Refuse {
            refusal: RefreshRefusal::UnknownToken,
            found: None,
        },
        // Reuse wins over every other state: the session may be expired or
        // revoked already, and revoking it again is harmless.
        Claim::AlreadyUsed(session_id) => RefreshVerdict::RevokeForReuse {
            session_id,
            user_id: found.map(|(session, _)| session.user_id),
        },
        Claim::Claimed(_) => match found {
            None => RefreshVerdict::Refuse {
                refusal: RefreshRefusal::UnknownToken,
                found: None,
            },
            Some((session, user)) => match session_refusal(session, user, now) {
                Some(refusal) => RefreshVerdict::Refuse {
                    refusal,
                    found: Some((session, user)),
                },
                None => RefreshVerdict::Rotate { session, user },
            },
        },
    }
}

/// Why a session may not be refreshed now, if it may not.
fn session_refusal(session: &Session, user: &User, now: DateTime<Utc>) -> Option<RefreshRefusal> {
    if session.revoked_at.is_some() {
        Some(RefreshRefusal::SessionRevoked)
    } else if session.expires_at <= now {
        Some(RefreshRefusal::SessionExpired)
    } else if user.disabled_at.is_some() {
        Some(RefreshRefusal::AccountDisabled)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::sessions::fixtures::{disabled_user, now, session, user};

    fn refused(verdict: RefreshVerdict<'_>) -> RefreshRefusal {
        match verdict {
            RefreshVerdict::Refuse { refusal, .. } => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_right_password_of_an_enabled_account_opens_a_session() {
        let verdict = judge_login(Some(user()), true);
        assert_eq!(verdict.failure_reason(), None);
        assert!(matches!(verdict, LoginVerdict::Open(user) if user.id == 7));
    }

    #[test]
    fn a_disabled_account_is_told_only_to_who_knows_its_password() {
        let right = judge_login(Some(disabled_user()), true);
        assert!(matches!(right, LoginVerdict::AccountDisabled(_)));
        assert_eq!(right.failure_reason(), Some("account_disabled"));
        let wrong = judge_login(Some(disabled_user()), false);
        assert!(matches!(wrong, LoginVerdict::WrongPassword(_)));
        assert_eq!(wrong.failure_reason(), Some("wrong_password"));
    }

    #[test]
    fn an_unknown_email_is_a_failure_whatever_the_password_check_said() {
        assert!(matches!(
            judge_login(None, false),
            LoginVerdict::UnknownEmail
        ));
        assert!(matches!(
            judge_login(None, true),
            LoginVerdict::UnknownEmail
        ));
        assert_eq!(
            LoginVerdict::UnknownEmail.failure_reason(),
            Some("unknown_email")
        );
    }

    #[test]
    fn a_session_is_opened_only_for_an_account_still_there_and_enabled() {
        assert_eq!(may_open_session(Some(&user())), Ok(()));
        assert_eq!(
            may_open_session(Some(&disabled_user())),
            Err(LoginRefusal::AccountDisabled)
        );
        assert_eq!(may_open_session(None), Err(LoginRefusal::BadCredentials));
    }

    #[test]
    fn an_unused_token_of_a_live_session_rotates() {
        let found = (session(), user());
        match judge_refresh(Claim::Claimed(found.0.id), Some(&found), now()) {
            RefreshVerdict::Rotate { session, user } => {
                assert_eq!(session.id, Uuid::from_u128(42));
                assert_eq!(user.id, 7);
            }
            other => panic!("expected a rotation, got {other:?}"),
        }
    }

    #[test]
    fn a_spent_token_revokes_its_session() {
        let found = (session(), user());
        match judge_refresh(Claim::AlreadyUsed(found.0.id), Some(&found), now()) {
            RefreshVerdict::RevokeForReuse {
                session_id,
                user_id,
            } => {
                assert_eq!(session_id, Uuid::from_u128(42));
                assert_eq!(user_id, Some(7));
            }
            other => panic!("expected a revocation, got {other:?}"),
        }
    }

    #[test]
    fn reuse_is_detected_even_on_an_ended_session() {
        let ended = (
            Session {
                revoked_at: Some(now() - Duration::minutes(1)),
                expires_at: now() - Duration::days(1),
                ..session()
            },
            disabled_user(),
        );
        let verdict = judge_refresh(Claim::AlreadyUsed(ended.0.id), Some(&ended), now());
        assert!(matches!(verdict, RefreshVerdict::RevokeForReuse { .. }));
        // The session row may be gone; the revocation is still attempted.
        let verdict = judge_refresh(Claim::AlreadyUsed(ended.0.id), None, now());
        assert!(matches!(
            verdict,
            RefreshVerdict::RevokeForReuse { user_id: None, .. }
        ));
    }

    #[test]
    fn of_two_refreshes_with_one_token_the_second_is_a_reuse() {
        // Spending is atomic in the database: the first request claims the
        // token, the second finds it spent.
        let found = (session(), user());
        let first = judge_refresh(Claim::Claimed(found.0.id), Some(&found), now());
        let second = judge_refresh(Claim::AlreadyUsed(found.0.id), Some(&found), now());
        assert!(matches!(first, RefreshVerdict::Rotate { .. }));
        assert!(matches!(second, RefreshVerdict::RevokeForReuse { .. }));
    }

    #[test]
    fn an_unknown_token_is_refused_without_a_session() {
        let verdict = judge_refresh(Claim::Unknown, None, now());
        assert!(matches!(
            verdict,
            RefreshVerdict::Refuse {
                refusal: RefreshRefusal::UnknownToken,
                found: None
            }
        ));
        // A claimed token whose session cannot be read is no better.
        let verdict = judge_refresh(Claim::Claimed(Uuid::from_u128(42)), None, now());
        assert_eq!(refused(verdict), RefreshRefusal::UnknownToken);
    }

    #[test]
    fn an_expired_session_is_refused_from_its_expiry_on() {
        let at_expiry = (
            Session {
                expires_at: now(),
                ..session()
            },
            user(),
        );
        let verdict = judge_refresh(Claim::Claimed(at_expiry.0.id), Some(&at_expiry), now());
        assert_eq!(refused(verdict), RefreshRefusal::SessionExpired);
        let just_before = now() - Duration::seconds(1);
        let verdict = judge_refresh(
            Claim::Claimed(at_expiry.0.id),
            Some(&at_expiry),
            just_before,
        );
        assert!(matches!(verdict, RefreshVerdict::Rotate { .. }));
    }

    #[test]
    fn a_revoked_session_or_disabled_account_is_refused_and_names_the_session() {
        let revoked = (
            Session {
                revoked_at: Some(now() - Duration::minutes(1)),
                ..session()
            },
            user(),
        );
        match judge_refresh(Claim::Claimed(revoked.0.id), Some(&revoked), now()) {
            RefreshVerdict::Refuse {
                refusal,
                found: Some((session, user)),
            } => {
                assert_eq!(refusal, RefreshRefusal::SessionRevoked);
                assert_eq!((session.id, user.id), (Uuid::from_u128(42), 7));
            }
            other => panic!("expected a refusal naming the session, got {other:?}"),
        }
        let disabled = (session(), disabled_user());
        let verdict = judge_refresh(Claim::Claimed(disabled.0.id), Some(&disabled), now());
        assert_eq!(refused(verdict), RefreshRefusal::AccountDisabled);
    }

    #[test]
    fn a_revoked_session_is_reported_before_its_expiry_and_account() {
        let everything_wrong = (
            Session {
                revoked_at: Some(now() - Duration::minutes(1)),
                expires_at: now() - Duration::days(1),
                ..session()
            },
            disabled_user(),
        );
        let verdict = judge_refresh(
            Claim::Claimed(everything_wrong.0.id),
            Some(&everything_wrong),
            now(),
        );
        assert_eq!(refused(verdict), RefreshRefusal::SessionRevoked);
        let expired_and_disabled = (
            Session {
                expires_at: now() - Duration::days(1),
                ..session()
            },
            disabled_user(),
        );
        let verdict = judge_refresh(
            Claim::Claimed(expired_and_disabled.0.id),
            Some(&expired_and_disabled),
            now(),
        );
        assert_eq!(refused(verdict), RefreshRefusal::SessionExpired);
    }
}
