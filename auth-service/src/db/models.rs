//! Rows of the auth-service's tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ninaivalaigal::schema::{audit_events, refresh_tokens, revoked_sessions, sessions, users};
use uuid::Uuid;

/// Role name of administrators.
pub const ROLE_ADMIN: &str = "admin";
/// Role name of ordinary accounts.
pub const ROLE_USER: &str = "user";

/// What an account may do beyond its own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An ordinary account.
    User,
    /// May use AdminService.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => ROLE_USER,
            Self::Admin => ROLE_ADMIN,
        }
    }
}

/// An account.
#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub account_type: String,
    pub role: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.role == ROLE_ADMIN
    }
}

/// A new account.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

/// A session: one login, a family of single-use refresh tokens.
#[derive(Clone, Debug, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: Uuid,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub access_expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

/// A refresh token, by the hash of its value.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A session whose access tokens must no longer be honored.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = revoked_sessions, check_for_backend(diesel::pg::Pg))]
pub struct RevokedSession {
    pub session_id: Uuid,
    pub user_id: i64,
    pub revoked_at: DateTime<Utc>,
    pub access_expires_at: DateTime<Utc>,
}

/// An audit event to record.
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub event: &'a str,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub email: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub detail: serde_json::Value,
}
