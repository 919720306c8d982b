//! gRPC handlers of the auth-service and what they share.

mod admin;
mod auth;
mod convert;

use std::{collections::HashSet, net::IpAddr, sync::Arc};

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use ninaivalaigal::{
    db::PgPool,
    token::{Claims, TokenError},
};
use tonic::{Request, metadata::MetadataMap};

use crate::{
    db::{
        self,
        models::{Session, User},
    },
    error::{Error, Result},
    passwords::Passwords,
    throttle::LoginThrottle,
    tokens::TokenSigner,
};

/// Everything the handlers share.
pub struct AuthState {
    /// Database connections (as the auth role).
    pub pool: PgPool,
    /// bcrypt, off the runtime and bounded.
    pub passwords: Passwords,
    /// Signs and verifies access tokens.
    pub signer: TokenSigner,
    /// Failed-login throttles.
    pub throttle: LoginThrottle,
    /// Lifetime of refresh tokens.
    pub refresh_lifetime: chrono::Duration,
    /// Emails that get the admin role at registration.
    pub admin_emails: HashSet<String>,
}

/// Handlers of `AuthService`.
#[derive(Clone)]
pub struct AuthRpc {
    state: Arc<AuthState>,
}

/// Handlers of `AdminService`.
#[derive(Clone)]
pub struct AdminRpc {
    state: Arc<AuthState>,
}

impl AuthRpc {
    /// Handlers over `state`.
    pub fn new(state: Arc<AuthState>) -> Self {
        Self { state }
    }
}

impl AdminRpc {
    /// Handlers over `state`.
    pub fn new(state: Arc<AuthState>) -> Self {
        Self { state }
    }
}

/// The caller's IP address, for throttling and the audit trail.
fn client_addr<T>(request: &Request<T>) -> Option<IpAddr> {
    request.remote_addr().map(|addr| addr.ip().to_canonical())
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer_token(metadata: &MetadataMap) -> Result<&str> {
    let value = metadata.get("authorization").ok_or_else(|| {
        Error::Unauthenticated(
            "missing access token: send `authorization: Bearer <access_token>`".into(),
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("authorization header is not text".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        Error::Unauthenticated("authorization header must be `Bearer <access_token>`".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthenticated(
            "authorization header must be `Bearer <access_token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// A caller authenticated by a valid access token whose session is live and
/// whose account is enabled (checked in the database, so revocation takes
/// effect here at once).
struct Caller {
    claims: Claims,
    user: User,
    session: Session,
}

impl AuthState {
    /// Verifies the bearer token of a request and loads its session and account.
    async fn authenticate(
        &self,
        metadata: &MetadataMap,
        conn: &mut AsyncPgConnection,
    ) -> Result<Caller> {
        let token = bearer_token(metadata)?;
        let claims = self.signer.verifier().verify(token)?;
        let (session, user) = db::sessions::find_with_user(conn, claims.sid)
            .await?
            .ok_or(TokenError::Revoked)?;
        if session.user_id != claims.user_id
            || session.revoked_at.is_some()
            || user.disabled_at.is_some()
        {
            return Err(TokenError::Revoked.into());
        }
        Ok(Caller {
            claims,
            user,
            session,
        })
    }

    /// Creates a session for `user` and returns it with its tokens. Call it
    /// in a transaction: the account row is share-locked and checked again,
    /// so an account disabled or deleted since it was read gets no session.
    async fn open_session(
        &self,
        conn: &mut AsyncPgConnection,
        user: &User,
    ) -> Result<convert::IssuedSession> {
        let current = db::users::find_by_id_for_share(conn, user.id).await?;
        match current {
            Some(current) if current.disabled_at.is_none() => {}
            Some(_) => {
                return Err(Error::PermissionDenied(
                    "this account has been disabled; contact an administrator".into(),
                ));
            }
            None => {
                return Err(Error::Unauthenticated(
                    "email or password is incorrect".into(),
                ));
            }
        }
        let now = Utc::now();
        let session_id = uuid::Uuid::new_v4();
        let access = self.signer.sign(user, session_id)?;
        let refresh_token = crate::tokens::new_refresh_token();
        let expires_at = now + self.refresh_lifetime;
        let session = Session {
            id: session_id,
            user_id: user.id,
            created_at: now,
            refreshed_at: now,
            expires_at,
            access_expires_at: access.expires_at,
            revoked_at: None,
            revoked_reason: None,
        };
        db::sessions::create(
            conn,
            &session,
            crate::tokens::refresh_token_hash(&refresh_token),
        )
        .await?;
        Ok(convert::IssuedSession {
            session_id,
            access,
            refresh_token,
            refresh_expires_at: expires_at,
        })
    }
}
