//! `AuthService.DeleteAccount`: a user erases their own account.

use std::net::IpAddr;

use diesel_async::AsyncConnection;
use ninaivalaigal::{auth_v1 as pb, token::TokenError};
use serde_json::json;
use tonic::metadata::MetadataMap;

use super::{AuthState, convert};
use crate::{
    audit::{AuditEvent, Event},
    db,
    erasure::{self, Requester},
    error::{Attempts, Error, Result},
};

/// What a wrong password hears.
const WRONG_PASSWORD: &str = "the password is not right; nothing was deleted";

#[tracing::instrument(skip_all)]
pub async fn delete_account(
    state: &AuthState,
    client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::DeleteAccountRequest,
) -> Result<pb::DeleteAccountResponse> {
    let caller = {
        let mut conn = db::connection(&state.pool).await?;
        state.authenticate(metadata, &mut conn).await?
    };
    if request.password.is_empty() {
        return Err(Error::InvalidArgument(
            "password is required: enter the account's password again to confirm the erasure"
                .into(),
        ));
    }
    // A stolen access token must not turn into unlimited password guesses:
    // each check takes its place in the login throttle first, like a login.
    let reservation = match state.throttle.reserve(&caller.user.email, client) {
        Ok(reservation) => reservation,
        Err(wait) => {
            refused(state, client, caller.user.id, "throttled").await?;
            return Err(Error::Throttled(Attempts::FailedLogins, wait));
        }
    };
    let matches = match state
        .passwords
        .verify(&request.password, Some(&caller.user.password_hash))
        .await
    {
        Ok(matches) => matches,
        Err(error) => {
            reservation.give_back();
            return Err(error);
        }
    };
    if !matches {
        drop(reservation);
        refused(state, client, caller.user.id, "wrong_password").await?;
        return Err(Error::PermissionDenied(WRONG_PASSWORD.into()));
    }
    reservation.give_back();

    let mut conn = db::connection(&state.pool).await?;
    let receipt = conn
        .transaction(async |conn| {
            if caller.user.is_admin() {
                // Admins first, in the order role changes take them.
                let admins = db::users::lock_admins(conn).await?;
                let others = admins
                    .iter()
                    .filter(|admin| admin.id != caller.user.id && admin.disabled_at.is_none())
                    .count();
                if others == 0 {
                    return Err(Error::FailedPrecondition(
                        "you are the last enabled administrator; give another account the admin role first (AdminService.SetUserRole, or `auth-service admin grant EMAIL`)".into(),
                    ));
                }
            }
            let user = db::users::find_by_id_for_update(conn, caller.user.id)
                .await?
                .ok_or(TokenError::Revoked)?;
            // Checked again under the lock: a logout or a disable that came
            // in meanwhile wins.
            state.authenticate(metadata, conn).await?;
            erasure::erase(conn, &user, Requester::Owner).await
        })
        .await?;
    tracing::info!(
        user_id = receipt.user_id,
        memories = receipt.memories,
        "account erased by its user"
    );
    Ok(pb::DeleteAccountResponse {
        receipt: Some(convert::receipt(&receipt)?),
    })
}

/// Audits a refused erasure (within the client's failure-row limit).
async fn refused(
    state: &AuthState,
    client: Option<IpAddr>,
    user_id: i64,
    reason: &str,
) -> Result<()> {
    let mut conn = db::connection(&state.pool).await?;
    AuditEvent::new(Event::AccountDeleteRefused, client)
        .user(user_id)
        .detail(json!({ "reason": reason }))
        .record_failure(&mut conn, &state.audit)
        .await
}
