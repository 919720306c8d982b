//! A login whose password has been checked: open a session, or record the
//! failure (and count it against the throttles).

use std::net::IpAddr;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;

use super::{
    Issuer, LoginOutcome, LoginRefusal, issue,
    rules::{self, LoginVerdict},
};
use crate::{
    audit::{AuditEvent, Event},
    db::models::User,
    error::{Error, Result},
    input::Email,
    throttle::LoginThrottle,
};

/// A login attempt after its password was checked.
pub struct CheckedLogin<'a> {
    /// The email presented.
    pub email: &'a Email,
    /// The account with that email, if any.
    pub account: Option<User>,
    /// Whether the password matched the account's.
    pub password_matches: bool,
    /// Where the attempt came from.
    pub client: Option<IpAddr>,
}

/// Opens a session for a checked login, or refuses it; either way the
/// attempt is audited.
pub async fn login(
    conn: &mut AsyncPgConnection,
    issuer: Issuer<'_>,
    throttle: &LoginThrottle,
    attempt: CheckedLogin<'_>,
) -> Result<LoginOutcome> {
    let CheckedLogin {
        email,
        account,
        password_matches,
        client,
    } = attempt;
    let verdict = rules::judge_login(account, password_matches);
    let reason = verdict.failure_reason();
    match verdict {
        LoginVerdict::Open(user) => {
            let session = conn
                .transaction(async |conn| {
                    let issued = issue::open(conn, issuer, &user).await?;
                    AuditEvent::new(Event::LoginSucceeded, client)
                        .user(user.id)
                        .email(&user.email)
                        .detail(json!({ "session_id": issued.session_id }))
                        .record(conn)
                        .await?;
                    Ok::<_, Error>(issued)
                })
                .await?;
            tracing::info!(user_id = user.id, "logged in");
            Ok(LoginOutcome::LoggedIn {
                user: Box::new(user),
                session,
            })
        }
        LoginVerdict::AccountDisabled(user) => {
            AuditEvent::new(Event::LoginFailed, client)
                .user(user.id)
                .email(email.as_str())
                .detail(json!({ "reason": reason }))
                .record(conn)
                .await?;
            Ok(LoginOutcome::Refused(LoginRefusal::AccountDisabled))
        }
        LoginVerdict::WrongPassword(user) => {
            bad_credentials(conn, throttle, email, Some(&user), reason, client).await
        }
        LoginVerdict::UnknownEmail => {
            bad_credentials(conn, throttle, email, None, reason, client).await
        }
    }
}

/// Counts a wrong password or unknown email against the throttles and
/// audits it; the client learns only that the credentials were wrong (or
/// that it must now wait).
async fn bad_credentials(
    conn: &mut AsyncPgConnection,
    throttle: &LoginThrottle,
    email: &Email,
    account: Option<&User>,
    reason: Option<&str>,
    client: Option<IpAddr>,
) -> Result<LoginOutcome> {
    let throttled = throttle.record_failure(email.as_str(), client);
    let mut event = AuditEvent::new(Event::LoginFailed, client)
        .email(email.as_str())
        .detail(json!({ "reason": reason, "throttled": throttled.is_some() }));
    if let Some(user) = account {
        event = event.user(user.id);
    }
    event.record(conn).await?;
    Ok(LoginOutcome::Refused(match throttled {
        Some(wait) => LoginRefusal::Throttled(wait),
        None => LoginRefusal::BadCredentials,
    }))
}
