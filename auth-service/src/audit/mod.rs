//! The audit trail: who did what, when, from where. It never holds a
//! password or a token (only ids, emails and reasons). Failures that anyone
//! can cause at will are written through [`AuditLimiter`], so that a flood
//! of them becomes a bounded number of rows and one summary.

mod limiter;

use std::net::IpAddr;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::audit_events;
use serde_json::{Value, json};

use crate::{db::models::NewAuditEvent, error::Result};

pub use limiter::{AuditLimiter, Suppressed};

/// Kinds of audited events, as stored in `audit_events.event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// An account was created.
    Register,
    /// A registration was refused (email taken, or throttled).
    RegisterRefused,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (wrong password, unknown email, disabled account).
    LoginFailed,
    /// A login was refused by the failure throttle.
    LoginThrottled,
    /// A refresh token was exchanged.
    Refresh,
    /// A refresh token was refused (unknown, expired, revoked session, disabled account).
    RefreshFailed,
    /// A spent refresh token came back: its session was revoked.
    RefreshTokenReuse,
    /// A session was ended by its user.
    Logout,
    /// An admin listed accounts.
    AdminListUsers,
    /// An admin disabled an account.
    AdminDisableUser,
    /// An admin deleted an account.
    AdminDeleteUser,
    /// An account was given the admin role (by an admin or the operator).
    AdminRoleGranted,
    /// An account's admin role was taken away (by an admin or the operator).
    AdminRoleRevoked,
    /// Failure rows of one kind from one client that were only counted.
    AuditSuppressed,
    /// A user erased their own account (DeleteAccount).
    AccountDeleted,
    /// A DeleteAccount was refused: wrong password, or the last admin.
    AccountDeleteRefused,
}

impl Event {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::RegisterRefused => "register_refused",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Refresh => "refresh",
            Self::RefreshFailed => "refresh_failed",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::Logout => "logout",
            Self::AdminListUsers => "admin_list_users",
            Self::AdminDisableUser => "admin_disable_user",
            Self::AdminDeleteUser => "admin_delete_user",
            Self::AdminRoleGranted => "admin_role_granted",
            Self::AdminRoleRevoked => "admin_role_revoked",
            Self::AuditSuppressed => "audit_suppressed",
            Self::AccountDeleted => "account_deleted",
            Self::AccountDeleteRefused => "account_delete_refused",
        }
    }
}

/// One event to record.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    event: Event,
    client_addr: Option<IpAddr>,
    user_id: Option<i64>,
    actor_id: Option<i64>,
    email: Option<&'a str>,
    detail: Value,
}

impl<'a> AuditEvent<'a> {
    /// An event from a client at `client_addr`.
    pub fn new(event: Event, client_addr: Option<IpAddr>) -> Self {
        Self {
            event,
            client_addr,
            user_id: None,
            actor_id: None,
            email: None,
            detail: json!({}),
        }
    }

    /// The account concerned.
    pub fn user(mut self, user_id: i64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// The admin who acted (none when the operator did).
    pub fn actor(mut self, actor_id: i64) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    /// The email presented.
    pub fn email(mut self, email: &'a str) -> Self {
        self.email = Some(email);
        self
    }

    /// Extra facts (reason, session id); never secrets.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// Writes a failure that a client can cause at will, unless its client
    /// has written enough rows of this kind this minute: then it is only
    /// counted, for the summary row written when the minute is over.
    pub async fn record_failure(
        self,
        conn: &mut AsyncPgConnection,
        limiter: &AuditLimiter,
    ) -> Result<()> {
        let Some(admitted) = limiter.admit(self.event, self.client_addr) else {
            return Ok(());
        };
        if let Some(summary) = admitted.previous {
            summary.record(conn).await?;
        }
        self.record(conn).await
    }

    /// Writes the event.
    pub async fn record(self, conn: &mut AsyncPgConnection) -> Result<()> {
        let client_addr = self.client_addr.map(|addr| addr.to_string());
        diesel::insert_into(audit_events::table)
            .values(NewAuditEvent {
                event: self.event.as_str(),
                user_id: self.user_id,
                actor_id: self.actor_id,
                email: self.email,
                client_addr: client_addr.as_deref(),
                detail: self.detail,
            })
            .execute(conn)
            .await?;
        Ok(())
    }
}
