//! Queries on sessions, refresh tokens and the revocation list.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::{refresh_tokens, revoked_sessions, sessions, users};
use uuid::Uuid;

use super::models::{RefreshToken, RevokedSession, Session, User};
use crate::error::Result;

/// Why a session was revoked, as stored in `sessions.revoked_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A spent refresh token was presented again.
    RefreshTokenReuse,
    /// An admin disabled the account.
    UserDisabled,
    /// An admin deleted the account.
    UserDeleted,
}

impl RevokeReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::UserDisabled => "user_disabled",
            Self::UserDeleted => "user_deleted",
        }
    }
}

/// Records a new session and its first refresh token.
pub async fn create(
    conn: &mut AsyncPgConnection,
    session: &Session,
    refresh_token_hash: Vec<u8>,
) -> Result<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .await?;
    insert_refresh_token(conn, session.id, refresh_token_hash, session.created_at).await
}

async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    token_hash: Vec<u8>,
    issued_at: DateTime<Utc>,
) -> Result<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(&RefreshToken {
            token_hash,
            session_id,
            issued_at,
            used_at: None,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The token was unused and is now spent: its session may be rotated.
    Claimed(Uuid),
    /// The token was spent already (or another request spent it first).
    AlreadyUsed(Uuid),
    /// No such token.
    Unknown,
}

impl Claim {
    /// The session of the token, when there is one.
    pub fn session_id(self) -> Option<Uuid> {
        match self {
            Self::Claimed(session_id) | Self::AlreadyUsed(session_id) => Some(session_id),
            Self::Unknown => None,
        }
    }
}

/// Spends a refresh token for Refresh: locks its session first (see [`lock`]
/// for why this order), then claims the token. Call it in a transaction, which
/// then holds the session's lock until it ends.
pub async fn spend_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Claim> {
    let Some(session_id) = find_refresh_token_session(conn, token_hash).await? else {
        return Ok(Claim::Unknown);
    };
    if lock(conn, session_id).await?.is_none() {
        return Ok(Claim::Unknown);
    }
    claim_refresh_token(conn, token_hash, now).await
}

/// Spends a refresh token. The conditional UPDATE makes this atomic: of two
/// concurrent requests with the same token exactly one sees `Claimed` (even
/// without the session lock that Refresh also holds).
async fn claim_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Claim> {
    let claimed: Option<Uuid> = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(now))
    .returning(refresh_tokens::session_id)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(session_id) = claimed {
        return Ok(Claim::Claimed(session_id));
    }
    Ok(find_refresh_token_session(conn, token_hash)
        .await?
        .map_or(Claim::Unknown, Claim::AlreadyUsed))
}

/// The session a refresh token (spent or not) belongs to.
pub async fn find_refresh_token_session(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> Result<Option<Uuid>> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(refresh_tokens::session_id)
        .first(conn)
        .await
        .optional()?)
}

/// Locks a session row until the transaction ends. Refresh takes this lock
/// before it spends the token, the same order (session, then refresh token)
/// in which revocation and account deletion touch them, so they cannot
/// deadlock; concurrent refreshes of one session run one after the other.
async fn lock(conn: &mut AsyncPgConnection, session_id: Uuid) -> Result<Option<Session>> {
    Ok(sessions::table
        .find(session_id)
        .select(Session::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// A session and its account.
pub async fn find_with_user(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
) -> Result<Option<(Session, User)>> {
    Ok(sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .select((Session::as_select(), User::as_select()))
        .first(conn)
        .await
        .optional()?)
}

/// Issues the next refresh token of a session and records the new access
/// token's expiry.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    refresh_token_hash: Vec<u8>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    access_expires_at: DateTime<Utc>,
) -> Result<()> {
    diesel::update(sessions::table.find(session_id))
        .set((
            sessions::refreshed_at.eq(now),
            sessions::expires_at.eq(expires_at),
            sessions::access_expires_at.eq(access_expires_at),
        ))
        .execute(conn)
        .await?;
    insert_refresh_token(conn, session_id, refresh_token_hash, now).await
}

/// Revokes one session and lists it in `revoked_sessions`, so that the
/// memory-service stops honoring its access tokens. Returns false when it was
/// revoked already (or does not exist).
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    session_id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool> {
    let revoked = revoke_where(
        conn,
        sessions::table
            .filter(sessions::id.eq(session_id))
            .into_boxed(),
        reason,
        now,
    )
    .await?;
    Ok(revoked > 0)
}

/// Revokes every live session of an account; returns how many.
pub async fn revoke_all_of_user(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<usize> {
    revoke_where(
        conn,
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .into_boxed(),
        reason,
        now,
    )
    .await
}

async fn revoke_where(
    conn: &mut AsyncPgConnection,
    which: sessions::BoxedQuery<'_, diesel::pg::Pg>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<usize> {
    let ids: Vec<Uuid> = which
        .filter(sessions::revoked_at.is_null())
        .select(sessions::id)
        .load(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let revoked: Vec<(Uuid, i64, DateTime<Utc>)> = diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(&ids))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason.as_str()),
    ))
    .returning((sessions::id, sessions::user_id, sessions::access_expires_at))
    .get_results(conn)
    .await?;
    if revoked.is_empty() {
        return Ok(0);
    }
    let rows: Vec<RevokedSession> = revoked
        .iter()
        .map(|&(session_id, user_id, access_expires_at)| RevokedSession {
            session_id,
            user_id,
            revoked_at: now,
            access_expires_at,
        })
        .collect();
    diesel::insert_into(revoked_sessions::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(revoked.len())
}

/// Forgets revocations whose access tokens have all expired (plus a margin
/// for clock leeway); returns how many.
pub async fn prune_revocations(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> Result<usize> {
    Ok(diesel::delete(
        revoked_sessions::table.filter(revoked_sessions::access_expires_at.lt(before)),
    )
    .execute(conn)
    .await?)
}
