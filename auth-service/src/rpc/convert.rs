//! Rows and tokens to protobuf messages.

use chrono::{DateTime, Utc};
use ninaivalaigal::{auth_v1 as pb, timestamp::to_timestamp};
use prost_types::Timestamp;

use crate::{
    db::models::{ROLE_ADMIN, Role, User},
    erasure::Receipt,
    error::{Error, Result},
    sessions::IssuedSession,
};

/// A time this service stored or computed; one a Timestamp cannot hold is
/// our fault, not the client's.
fn timestamp(field: &'static str, at: DateTime<Utc>) -> Result<Timestamp> {
    to_timestamp(field, at).map_err(|error| Error::Internal(error.into()))
}

pub fn role(name: &str) -> pb::Role {
    if name == ROLE_ADMIN {
        pb::Role::Admin
    } else {
        pb::Role::User
    }
}

/// The role a request asks for; it must name one.
pub fn requested_role(role: i32) -> Result<Role> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::User) => Ok(Role::User),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Unspecified) | Err(_) => Err(Error::InvalidArgument(
            "role must be ROLE_USER or ROLE_ADMIN".into(),
        )),
    }
}

pub fn user(user: &User) -> Result<pb::User> {
    Ok(pb::User {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        account_type: user.account_type.clone(),
        role: role(&user.role).into(),
        create_time: Some(timestamp("create_time", user.created_at)?),
        disabled: user.disabled_at.is_some(),
    })
}

pub fn receipt(receipt: &Receipt) -> Result<pb::ErasureReceipt> {
    Ok(pb::ErasureReceipt {
        user_id: receipt.user_id,
        contexts: receipt.contexts,
        memories: receipt.memories,
        sessions: receipt.sessions,
        refresh_tokens: receipt.refresh_tokens,
        audit_events_scrubbed: receipt.audit_events_scrubbed,
        erase_time: Some(timestamp("erase_time", receipt.erased_at)?),
    })
}

pub fn session(issued: IssuedSession) -> Result<pb::Session> {
    Ok(pb::Session {
        access_token: issued.access.token,
        access_token_expire_time: Some(timestamp(
            "access_token_expire_time",
            issued.access.expires_at,
        )?),
        refresh_token: issued.refresh_token,
        refresh_token_expire_time: Some(timestamp(
            "refresh_token_expire_time",
            issued.refresh_expires_at,
        )?),
        session_id: issued.session_id.to_string(),
    })
}
