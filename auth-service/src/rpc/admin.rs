//! `AdminService`: list, disable and delete accounts, and give or take the
//! admin role. Every call needs the
//! bearer access token of a live session of an enabled admin account, checked
//! against the database (not only the token's `role` claim).

use std::net::IpAddr;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use ninaivalaigal::{auth_v1 as pb, paging};
use serde_json::json;
use tonic::metadata::MetadataMap;

use super::{AuthState, Caller, convert};
use crate::{
    admins::{self, Actor},
    audit::{AuditEvent, Event},
    db::{self, models::User, sessions::RevokeReason},
    erasure::{self, Requester},
    error::{Error, Result},
    input::{Email, USERS_PAGE_LIMITS, UsersCursor},
};

/// The caller, who must be an administrator.
async fn admin(
    state: &AuthState,
    metadata: &MetadataMap,
    conn: &mut AsyncPgConnection,
) -> Result<Caller> {
    let caller = state.authenticate(metadata, conn).await?;
    if !caller.user.is_admin() {
        return Err(Error::PermissionDenied(
            "this needs an administrator account (role admin)".into(),
        ));
    }
    Ok(caller)
}

/// The account an admin names by email, which must not be the admin's
/// own, locked for the rest of the transaction.
async fn target(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    email: &str,
    action: &str,
) -> Result<User> {
    let email = Email::parse(email)?;
    let user = db::users::find_by_email_for_update(conn, email.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no account has email {email}")))?;
    if user.id == caller.user.id {
        return Err(Error::FailedPrecondition(format!(
            "you cannot {action} your own account; ask another administrator"
        )));
    }
    Ok(user)
}

#[tracing::instrument(skip_all)]
pub async fn list_users(
    state: &AuthState,
    client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse> {
    let mut conn = db::connection(&state.pool).await?;
    let caller = admin(state, metadata, &mut conn).await?;
    let page_size = USERS_PAGE_LIMITS.page_size(request.page_size)?;
    let after =
        paging::decode::<UsersCursor>(&request.page_token)?.map_or(0, |cursor| cursor.after);
    let mut users = db::users::page(&mut conn, after, page_size.fetch_limit()).await?;
    let more = page_size.cut(&mut users);
    let next_page_token = match users.last() {
        Some(last) if more => paging::encode(&UsersCursor { after: last.id })?,
        _ => String::new(),
    };
    AuditEvent::new(Event::AdminListUsers, client)
        .actor(caller.user.id)
        .detail(json!({ "count": users.len() }))
        .record(&mut conn)
        .await?;
    Ok(pb::ListUsersResponse {
        users: users.iter().map(convert::user).collect::<Result<_>>()?,
        next_page_token,
    })
}

#[tracing::instrument(skip_all)]
pub async fn disable_user(
    state: &AuthState,
    client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::DisableUserRequest,
) -> Result<pb::DisableUserResponse> {
    let mut conn = db::connection(&state.pool).await?;
    let caller = admin(state, metadata, &mut conn).await?;
    let now = Utc::now();
    let user = conn
        .transaction(async |conn| {
            let target = target(conn, &caller, &request.email, "disable").await?;
            let user = db::users::disable(conn, target.id, now).await?;
            let revoked =
                db::sessions::revoke_all_of_user(conn, target.id, RevokeReason::UserDisabled, now)
                    .await?;
            AuditEvent::new(Event::AdminDisableUser, client)
                .actor(caller.user.id)
                .user(target.id)
                .email(&target.email)
                .detail(json!({ "sessions_revoked": revoked }))
                .record(conn)
                .await?;
            Ok::<_, Error>(user)
        })
        .await?;
    tracing::info!(
        user_id = user.id,
        admin_id = caller.user.id,
        "account disabled"
    );
    Ok(pb::DisableUserResponse {
        user: Some(convert::user(&user)?),
    })
}

#[tracing::instrument(skip_all)]
pub async fn delete_user(
    state: &AuthState,
    _client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::DeleteUserRequest,
) -> Result<pb::DeleteUserResponse> {
    let mut conn = db::connection(&state.pool).await?;
    let caller = admin(state, metadata, &mut conn).await?;
    let receipt = conn
        .transaction(async |conn| {
            let target = target(conn, &caller, &request.email, "delete").await?;
            // The same erasure as the user's own DeleteAccount.
            erasure::erase(conn, &target, Requester::Admin(caller.user.id)).await
        })
        .await?;
    tracing::info!(
        user_id = receipt.user_id,
        admin_id = caller.user.id,
        memories = receipt.memories,
        "account deleted"
    );
    Ok(pb::DeleteUserResponse {
        receipt: Some(convert::receipt(&receipt)?),
    })
}

#[tracing::instrument(skip_all)]
pub async fn set_user_role(
    state: &AuthState,
    client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::SetUserRoleRequest,
) -> Result<pb::SetUserRoleResponse> {
    let mut conn = db::connection(&state.pool).await?;
    let caller = admin(state, metadata, &mut conn).await?;
    let email = Email::parse(&request.email)?;
    let role = convert::requested_role(request.role)?;
    let outcome = admins::set_role(
        &mut conn,
        &email,
        role,
        Actor::Admin(caller.user.id),
        client,
    )
    .await?;
    tracing::info!(
        user_id = outcome.user.id,
        admin_id = caller.user.id,
        change = ?outcome.change,
        "role set"
    );
    Ok(pb::SetUserRoleResponse {
        user: Some(convert::user(&outcome.user)?),
    })
}
