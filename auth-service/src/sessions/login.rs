//! A login whose password has been checked: open a session, or record the
//! failure. (The throttles counted the attempt before its password was
//! checked.)

use std::net::IpAddr;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;

use super::{
    Issuer, LoginOutcome, LoginRefusal, issue,
    rules::{self, LoginVerdict},
};
use crate::{
    audit::{AuditEvent, AuditLimiter, Event},
    db::models::User,
    error::{Error, Result},
    input::Email,
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
    audit: &AuditLimiter,
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
                .record_failure(conn, audit)
                .await?;
            Ok(LoginOutcome::Refused(LoginRefusal::AccountDisabled))
        }
        LoginVerdict::WrongPassword(user) => {
            bad_credentials(conn, audit, email, Some(&user), reason, client).await
        }
        LoginVerdict::UnknownEmail => {
            bad_credentials(conn, audit, email, None, reason, client).await
        }
    }
}

/// Audits a wrong password or unknown email; the client learns only that
/// the credentials were wrong.
async fn bad_credentials(
    conn: &mut AsyncPgConnection,
    audit: &AuditLimiter,
    email: &Email,
    account: Option<&User>,
    reason: Option<&str>,
    client: Option<IpAddr>,
) -> Result<LoginOutcome> {
    let mut event = AuditEvent::new(Event::LoginFailed, client)
        .email(email.as_str())
        .detail(json!({ "reason": reason }));
    if let Some(user) = account {
        event = event.user(user.id);
    }
    event.record_failure(conn, audit).await?;
    Ok(LoginOutcome::Refused(LoginRefusal::BadCredentials))
}
