//! Rows for the unit tests of this module, around one fixed instant.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::db::models::{ROLE_USER, Session, User};

/// The instant the fixtures are built around.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

/// An enabled account, id 7.
pub fn user() -> User {
    User {
        id: 7,
        email: "ada@example.test".into(),
        name: "Ada".into(),
        password_hash: "$2b$04$hash".into(),
        account_type: "individual".into(),
        role: ROLE_USER.into(),
        disabled_at: None,
        created_at: now() - Duration::days(30),
    }
}

/// Account 7, disabled an hour before [`now`].
pub fn disabled_user() -> User {
    User {
        disabled_at: Some(now() - Duration::hours(1)),
        ..user()
    }
}

/// A live session of account 7, refreshed an hour before [`now`].
pub fn session() -> Session {
    Session {
        id: Uuid::from_u128(42),
        user_id: 7,
        created_at: now() - Duration::days(1),
        refreshed_at: now() - Duration::hours(1),
        expires_at: now() + Duration::days(29),
        access_expires_at: now() - Duration::minutes(45),
        revoked_at: None,
        revoked_reason: None,
    }
}
