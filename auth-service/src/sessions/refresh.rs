//! Refresh: spend a session's refresh token for the next one, and revoke the
//! session when a spent token comes back.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    IssuedSession, Issuer, RefreshOutcome, RefreshRefusal,
    rules::{self, RefreshVerdict},
};
use crate::{
    audit::{AuditEvent, AuditLimiter, Event},
    db::{
        self,
        models::{Session, User},
        sessions::RevokeReason,
    },
    error::{Error, Result},
    tokens::refresh_token_hash,
};

/// Exchanges a refresh token for the session's next tokens. The transaction
/// commits whatever the outcome, so that a reuse detection's revocation (and
/// every refusal's audit record) is kept.
pub async fn refresh(
    conn: &mut AsyncPgConnection,
    issuer: Issuer<'_>,
    audit: &AuditLimiter,
    refresh_token: &str,
    client: Option<IpAddr>,
) -> Result<RefreshOutcome> {
    let token_hash = refresh_token_hash(refresh_token);
    let now = Utc::now();
    conn.transaction(async |conn| {
        let claim = db::sessions::spend_refresh_token(conn, &token_hash, now).await?;
        let found = match claim.session_id() {
            Some(session_id) => db::sessions::find_with_user(conn, session_id).await?,
            None => None,
        };
        match rules::judge_refresh(claim, found.as_ref(), now) {
            RefreshVerdict::Rotate { session, user } => {
                let issued = rotate(conn, issuer, session, user, now, client).await?;
                Ok(RefreshOutcome::Rotated(issued))
            }
            RefreshVerdict::RevokeForReuse {
                session_id,
                user_id,
            } => {
                revoke_for_reuse(conn, audit, session_id, user_id, now, client).await?;
                Ok(RefreshOutcome::Refused(RefreshRefusal::Reused))
            }
            RefreshVerdict::Refuse { refusal, found } => {
                let mut event = AuditEvent::new(Event::RefreshFailed, client);
                event = match found {
                    Some((session, user)) => event.user(user.id).detail(json!({
                        "reason": refusal.audit_reason(),
                        "session_id": session.id,
                    })),
                    None => event.detail(json!({ "reason": refusal.audit_reason() })),
                };
                event.record_failure(conn, audit).await?;
                Ok(RefreshOutcome::Refused(refusal))
            }
        }
    })
    .await
}

/// Issues a live session's next tokens and records them.
async fn rotate(
    conn: &mut AsyncPgConnection,
    issuer: Issuer<'_>,
    session: &Session,
    user: &User,
    now: DateTime<Utc>,
    client: Option<IpAddr>,
) -> Result<IssuedSession> {
    let issued = issuer.issue(user, session.id, now)?;
    db::sessions::rotate(
        conn,
        session.id,
        refresh_token_hash(&issued.refresh_token),
        now,
        issued.refresh_expires_at,
        issued.access.expires_at,
    )
    .await?;
    AuditEvent::new(Event::Refresh, client)
        .user(user.id)
        .detail(json!({ "session_id": session.id }))
        .record(conn)
        .await?;
    Ok(issued)
}

/// Ends a session whose spent refresh token was presented again.
async fn revoke_for_reuse(
    conn: &mut AsyncPgConnection,
    audit: &AuditLimiter,
    session_id: Uuid,
    user_id: Option<i64>,
    now: DateTime<Utc>,
    client: Option<IpAddr>,
) -> Result<(), Error> {
    db::sessions::revoke(conn, session_id, RevokeReason::RefreshTokenReuse, now).await?;
    let mut event = AuditEvent::new(Event::RefreshTokenReuse, client)
        .detail(json!({ "session_id": session_id }));
    if let Some(user_id) = user_id {
        event = event.user(user_id);
    }
    event.record_failure(conn, audit).await?;
    tracing::warn!(%session_id, "refresh token reuse; session revoked");
    Ok(())
}
