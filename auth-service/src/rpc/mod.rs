//! gRPC handlers of the auth-service and what they share. The trait impls
//! here only take the request apart; each RPC is one function in `auth` or
//! `admin`.

mod account;
mod admin;
mod auth;
mod convert;

use std::{net::IpAddr, sync::Arc};

use diesel_async::AsyncPgConnection;
use ninaivalaigal::{
    auth_v1::{self as pb, admin_service_server::AdminService, auth_service_server::AuthService},
    db::PgPool,
    token::{Claims, TokenError},
};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    audit::AuditLimiter,
    client::TrustedProxies,
    db::{
        self,
        models::{Session, User},
    },
    error::Result,
    passwords::Passwords,
    sessions::Issuer,
    throttle::{LoginThrottle, RegistrationThrottle},
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
    /// Login throttles (per account and per client).
    pub throttle: LoginThrottle,
    /// Registration throttle (per client).
    pub registrations: RegistrationThrottle,
    /// Bounds the failure rows each client can add to the audit trail.
    pub audit: AuditLimiter,
    /// Proxies whose `x-forwarded-for` names the client.
    pub proxies: TrustedProxies,
    /// Lifetime of refresh tokens.
    pub refresh_lifetime: chrono::Duration,
    /// Failed logins and throttled attempts.
    pub metrics: crate::metrics::AuthMetrics,
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

/// The token of an `authorization: Bearer <token>` header.
fn bearer_token(metadata: &MetadataMap) -> Result<&str> {
    Ok(ninaivalaigal::bearer::from_metadata(metadata)?)
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
    /// The caller's IP address, for throttling and the audit trail.
    fn client_addr<T>(&self, request: &Request<T>) -> Option<IpAddr> {
        self.proxies.client_addr(
            request.remote_addr().map(|addr| addr.ip()),
            request.metadata(),
        )
    }

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

    /// What opening and rotating sessions needs of the state.
    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            signer: &self.signer,
            refresh_lifetime: self.refresh_lifetime,
        }
    }
}

// Each handler hands what it needs of the request (remote address, metadata,
// message) to its function in `auth` or `admin`.

#[tonic::async_trait]
impl AuthService for AuthRpc {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let client = self.state.client_addr(&request);
        let response = auth::register(&self.state, client, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = self.state.client_addr(&request);
        let response = auth::login(&self.state, client, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = self.state.client_addr(&request);
        let response = auth::refresh(&self.state, client, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = auth::logout(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let response = auth::who_am_i(&self.state, request.metadata()).await?;
        Ok(Response::new(response))
    }

    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(auth::jwks(&self.state)))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = account::delete_account(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl AdminService for AdminRpc {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = admin::list_users(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = admin::disable_user(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = admin::delete_user(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }

    async fn set_user_role(
        &self,
        request: Request<pb::SetUserRoleRequest>,
    ) -> Result<Response<pb::SetUserRoleResponse>, Status> {
        let client = self.state.client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let response = admin::set_user_role(&self.state, client, &metadata, request).await?;
        Ok(Response::new(response))
    }
}
