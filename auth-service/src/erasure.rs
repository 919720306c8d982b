//! Erasure of an account: the one path both `DeleteAccount` (the user,
//! with their password) and `AdminService.DeleteUser` take. In the caller's
//! transaction, with the account's row locked, it revokes every session
//! (the revocation list outlives the account, so the memory-service keeps
//! refusing their access tokens), deletes and counts the user's memory
//! usage, memories, contexts, refresh tokens and sessions, strips the audit
//! trail about the account down to its id and the events, and deletes the
//! account. What it counted is the receipt.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ninaivalaigal::schema::{
    audit_events, memories, memory_usage, recording_contexts, refresh_tokens, sessions,
};
use serde_json::json;

use crate::{
    audit::{AuditEvent, Event},
    db::{self, models::User, sessions::RevokeReason},
    error::Result,
};

/// Who asked for the erasure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// The account's owner, who gave the password again.
    Owner,
    /// An administrator, by account id.
    Admin(i64),
}

/// What an erasure removed, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The erased account's id.
    pub user_id: i64,
    /// Recording contexts deleted.
    pub contexts: i64,
    /// Memories deleted.
    pub memories: i64,
    /// Sessions deleted.
    pub sessions: i64,
    /// Refresh tokens deleted.
    pub refresh_tokens: i64,
    /// Audit rows about the account stripped to its id and the event.
    pub audit_events_scrubbed: i64,
    /// The time of the erasure (the transaction commits right after).
    pub erased_at: DateTime<Utc>,
}

fn count(rows: usize) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// Erases `user`, whose row the caller has locked `FOR UPDATE` in the
/// transaction `conn` is in.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    user: &User,
    requester: Requester,
) -> Result<Receipt> {
    let id = user.id;
    let erased_at = Utc::now();
    db::sessions::revoke_all_of_user(conn, id, RevokeReason::UserDeleted, erased_at).await?;
    // The policies that let this role delete a user's contexts and memories
    // name the account through this transaction-local setting.
    // `SET LOCAL`, formatted from the i64, as the memory-service sets its
    // user: the same on one server, behind a pooler and on Citus workers.
    conn.batch_execute(&format!("SET LOCAL app.erasing_user_id = '{id}'"))
        .await?;
    // The usage row first: the memory-service's writers lock it before they
    // touch memories, so this waits for those in flight and then stops new
    // ones (they find the account gone), in the order they use.
    diesel::delete(memory_usage::table.filter(memory_usage::owner_id.eq(id)))
        .execute(conn)
        .await?;
    let memories = diesel::delete(memories::table.filter(memories::owner_id.eq(id)))
        .execute(conn)
        .await?;
    let contexts =
        diesel::delete(recording_contexts::table.filter(recording_contexts::owner_id.eq(id)))
            .execute(conn)
            .await?;
    let session_ids = sessions::table
        .filter(sessions::user_id.eq(id))
        .select(sessions::id);
    let refresh_tokens = diesel::delete(
        refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(session_ids)),
    )
    .execute(conn)
    .await?;
    let sessions = diesel::delete(sessions::table.filter(sessions::user_id.eq(id)))
        .execute(conn)
        .await?;
    let audit_events_scrubbed = scrub_audit_trail(conn, user).await?;
    db::users::delete(conn, id).await?;
    let receipt = Receipt {
        user_id: id,
        contexts: count(contexts),
        memories: count(memories),
        sessions: count(sessions),
        refresh_tokens: count(refresh_tokens),
        audit_events_scrubbed: count(audit_events_scrubbed),
        erased_at,
    };
    record(conn, &receipt, requester).await?;
    Ok(receipt)
}

/// Leaves of the audit rows about the account only the id, the event and
/// its time: no email (also on rows that name it without the id, such as
/// throttled logins), no client address, no details. Rows where the account
/// acted as an administrator lose its client address; what they say of the
/// accounts it acted on stays. Returns how many rows about the account
/// were scrubbed.
async fn scrub_audit_trail(conn: &mut AsyncPgConnection, user: &User) -> Result<usize> {
    let about = diesel::update(
        audit_events::table.filter(
            audit_events::user_id
                .eq(user.id)
                .or(audit_events::email.eq(&user.email)),
        ),
    )
    .set((
        audit_events::email.eq(None::<String>),
        audit_events::client_addr.eq(None::<String>),
        audit_events::detail.eq(json!({})),
    ))
    .execute(conn)
    .await?;
    diesel::update(audit_events::table.filter(audit_events::actor_id.eq(user.id)))
        .set(audit_events::client_addr.eq(None::<String>))
        .execute(conn)
        .await?;
    Ok(about)
}

/// Audits the erasure itself: counts and who asked, nothing the account held.
async fn record(
    conn: &mut AsyncPgConnection,
    receipt: &Receipt,
    requester: Requester,
) -> Result<()> {
    let counts = json!({
        "contexts": receipt.contexts,
        "memories": receipt.memories,
        "sessions": receipt.sessions,
        "refresh_tokens": receipt.refresh_tokens,
    });
    let event = match requester {
        // No client address, whoever asked: a row about the account keeps
        // only ids, the event and counts.
        Requester::Owner => AuditEvent::new(Event::AccountDeleted, None),
        Requester::Admin(admin) => AuditEvent::new(Event::AdminDeleteUser, None).actor(admin),
    };
    event
        .user(receipt.user_id)
        .detail(counts)
        .record(conn)
        .await
}
