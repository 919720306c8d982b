//! Logout: revoke one session, named by its refresh token or by the caller's
//! authenticated access token.

use std::net::IpAddr;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::LogoutOutcome;
use crate::{
    audit::{AuditEvent, Event},
    db::{self, sessions::RevokeReason},
    error::{Error, Result},
    tokens::refresh_token_hash,
};

/// Which session a logout ends.
#[derive(Clone, Copy, Debug)]
pub enum LogoutOf<'a> {
    /// The session of this refresh token, spent or not.
    RefreshToken(&'a str),
    /// A session whose access token the caller authenticated with.
    Session { session_id: Uuid, user_id: i64 },
}

/// Revokes the session and audits it. Ending a session that has ended
/// already succeeds (and is audited as not live).
pub async fn logout(
    conn: &mut AsyncPgConnection,
    of: LogoutOf<'_>,
    client: Option<IpAddr>,
) -> Result<LogoutOutcome> {
    let now = Utc::now();
    let (session_id, user_id) = match of {
        LogoutOf::Session {
            session_id,
            user_id,
        } => (session_id, user_id),
        LogoutOf::RefreshToken(token) => {
            let hash = refresh_token_hash(token);
            let Some(session_id) = db::sessions::find_refresh_token_session(conn, &hash).await?
            else {
                return Ok(LogoutOutcome::UnknownToken);
            };
            let Some((session, _)) = db::sessions::find_with_user(conn, session_id).await? else {
                return Ok(LogoutOutcome::UnknownToken);
            };
            (session_id, session.user_id)
        }
    };
    conn.transaction(async |conn| {
        let revoked = db::sessions::revoke(conn, session_id, RevokeReason::Logout, now).await?;
        AuditEvent::new(Event::Logout, client)
            .user(user_id)
            .detail(json!({ "session_id": session_id, "was_live": revoked }))
            .record(conn)
            .await?;
        Ok::<_, Error>(())
    })
    .await?;
    Ok(LogoutOutcome::Ended)
}
