//! `AuthService`: register, log in, refresh, log out, who am I, and the JWKS.

use chrono::Utc;
use diesel_async::AsyncConnection;
use ninaivalaigal::auth_v1::{self as pb, auth_service_server::AuthService};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{AuthRpc, bearer_token, client_addr, convert};
use crate::{
    audit::{AuditEvent, Event},
    db::{
        self,
        models::{NewUser, ROLE_ADMIN, ROLE_USER},
        sessions::{Claim, RevokeReason},
    },
    error::Error,
    input::{DisplayName, Email, NewPassword},
    tokens::{new_refresh_token, refresh_token_hash},
};

/// The one answer for a wrong password and an unknown email.
const BAD_CREDENTIALS: &str = "email or password is incorrect";

/// What a refresh came to (committed either way, so that a reuse detection's
/// revocation is kept).
enum RefreshOutcome {
    Rotated(convert::IssuedSession),
    Refused(&'static str),
}

#[tonic::async_trait]
impl AuthService for AuthRpc {
    #[tracing::instrument(skip_all)]
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let state = &self.state;
        let client = client_addr(&request);
        let request = request.into_inner();
        let email = Email::parse(&request.email)?;
        let name = DisplayName::parse(&request.name)?;
        let password = NewPassword::parse(request.password)?;

        // Spare the bcrypt work when the answer is known already.
        {
            let mut conn = db::connection(&state.pool).await?;
            if db::users::find_by_email(&mut conn, email.as_str())
                .await?
                .is_some()
            {
                return Err(Error::AlreadyExists(format!(
                    "an account with email {email} exists already; log in instead"
                ))
                .into());
            }
        }
        let password_hash = state.passwords.hash(&password).await?;
        let role = if state.admin_emails.contains(email.as_str()) {
            ROLE_ADMIN
        } else {
            ROLE_USER
        };

        let mut conn = db::connection(&state.pool).await?;
        let (user, issued) = conn
            .transaction(async |conn| {
                let user = db::users::insert(
                    conn,
                    &NewUser {
                        email: email.as_str(),
                        name: name.as_str(),
                        password_hash: &password_hash,
                        role,
                    },
                )
                .await?;
                let issued = state.open_session(conn, &user).await?;
                AuditEvent::new(Event::Register, client)
                    .user(user.id)
                    .email(&user.email)
                    .detail(json!({ "session_id": issued.session_id, "role": user.role }))
                    .record(conn)
                    .await?;
                Ok::<_, Error>((user, issued))
            })
            .await?;
        tracing::info!(user_id = user.id, "registered");
        Ok(Response::new(pb::RegisterResponse {
            user: Some(convert::user(&user)),
            session: Some(convert::session(issued)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let state = &self.state;
        let client = client_addr(&request);
        let request = request.into_inner();
        let email = Email::parse(&request.email)?;

        if let Some(wait) = state.throttle.check(email.as_str(), client) {
            let mut conn = db::connection(&state.pool).await?;
            AuditEvent::new(Event::LoginThrottled, client)
                .email(email.as_str())
                .record(&mut conn)
                .await?;
            return Err(Error::Throttled(wait).into());
        }

        // No connection is held while bcrypt runs.
        let user = {
            let mut conn = db::connection(&state.pool).await?;
            db::users::find_by_email(&mut conn, email.as_str()).await?
        };
        let matches = state
            .passwords
            .verify(
                &request.password,
                user.as_ref().map(|user| user.password_hash.as_str()),
            )
            .await?;

        let mut conn = db::connection(&state.pool).await?;
        match user {
            Some(user) if matches && user.disabled_at.is_none() => {
                let issued = conn
                    .transaction(async |conn| {
                        let issued = state.open_session(conn, &user).await?;
                        AuditEvent::new(Event::LoginSucceeded, client)
                            .user(user.id)
                            .email(&user.email)
                            .detail(json!({ "session_id": issued.session_id }))
                            .record(conn)
                            .await?;
                        Ok::<_, Error>(issued)
                    })
                    .await?;
                tracing::info!(user_id = user.id, "logged in");
                Ok(Response::new(pb::LoginResponse {
                    user: Some(convert::user(&user)),
                    session: Some(convert::session(issued)),
                }))
            }
            Some(user) if matches => {
                // Only someone who knows the password learns that the
                // account is disabled.
                AuditEvent::new(Event::LoginFailed, client)
                    .user(user.id)
                    .email(email.as_str())
                    .detail(json!({ "reason": "account_disabled" }))
                    .record(&mut conn)
                    .await?;
                Err(Error::PermissionDenied(
                    "this account has been disabled; contact an administrator".into(),
                )
                .into())
            }
            user => {
                let throttled = state.throttle.record_failure(email.as_str(), client);
                let reason = if user.is_some() {
                    "wrong_password"
                } else {
                    "unknown_email"
                };
                let mut event = AuditEvent::new(Event::LoginFailed, client)
                    .email(email.as_str())
                    .detail(json!({ "reason": reason, "throttled": throttled.is_some() }));
                if let Some(user) = &user {
                    event = event.user(user.id);
                }
                event.record(&mut conn).await?;
                Err(match throttled {
                    Some(wait) => Error::Throttled(wait),
                    None => Error::Unauthenticated(BAD_CREDENTIALS.into()),
                }
                .into())
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let state = &self.state;
        let client = client_addr(&request);
        let token = request.into_inner().refresh_token;
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::InvalidArgument("refresh_token is required".into()).into());
        }
        let token_hash = refresh_token_hash(token);
        let now = Utc::now();
        let refresh_lifetime = state.refresh_lifetime;

        let mut conn = db::connection(&state.pool).await?;
        let outcome = conn
            .transaction(async |conn| {
                // Lock the session before spending its token (see
                // db::sessions::lock for why this order).
                let locked =
                    match db::sessions::find_refresh_token_session(conn, &token_hash).await? {
                        Some(session_id) => db::sessions::lock(conn, session_id).await?,
                        None => None,
                    };
                let claim = match locked {
                    Some(_) => db::sessions::claim_refresh_token(conn, &token_hash, now).await?,
                    None => Claim::Unknown,
                };
                let session_id = match claim {
                    Claim::Unknown => {
                        AuditEvent::new(Event::RefreshFailed, client)
                            .detail(json!({ "reason": "unknown_token" }))
                            .record(conn)
                            .await?;
                        return Ok(RefreshOutcome::Refused(
                            "refresh token is not valid; log in again",
                        ));
                    }
                    Claim::AlreadyUsed(session_id) => {
                        // Someone holds a copy of a spent token: end the
                        // whole session, the legitimate client included.
                        db::sessions::revoke(
                            conn,
                            session_id,
                            RevokeReason::RefreshTokenReuse,
                            now,
                        )
                        .await?;
                        let user_id = db::sessions::find_with_user(conn, session_id)
                            .await?
                            .map(|(session, _)| session.user_id);
                        let mut event = AuditEvent::new(Event::RefreshTokenReuse, client)
                            .detail(json!({ "session_id": session_id }));
                        if let Some(user_id) = user_id {
                            event = event.user(user_id);
                        }
                        event.record(conn).await?;
                        tracing::warn!(%session_id, "refresh token reuse; session revoked");
                        return Ok(RefreshOutcome::Refused(
                            "refresh token was already used; its session has been revoked as a \
                             precaution, log in again",
                        ));
                    }
                    Claim::Claimed(session_id) => session_id,
                };
                let Some((session, user)) = db::sessions::find_with_user(conn, session_id).await?
                else {
                    return Ok(RefreshOutcome::Refused(
                        "refresh token is not valid; log in again",
                    ));
                };
                let refused = if session.revoked_at.is_some() {
                    Some(("session_revoked", "this session has ended; log in again"))
                } else if session.expires_at <= now {
                    Some(("session_expired", "refresh token has expired; log in again"))
                } else if user.disabled_at.is_some() {
                    Some((
                        "account_disabled",
                        "this account has been disabled; contact an administrator",
                    ))
                } else {
                    None
                };
                if let Some((reason, message)) = refused {
                    AuditEvent::new(Event::RefreshFailed, client)
                        .user(user.id)
                        .detail(json!({ "reason": reason, "session_id": session_id }))
                        .record(conn)
                        .await?;
                    return Ok(RefreshOutcome::Refused(message));
                }

                let access = state.signer.sign(&user, session_id)?;
                let refresh_token = new_refresh_token();
                let expires_at = now + refresh_lifetime;
                db::sessions::rotate(
                    conn,
                    session_id,
                    refresh_token_hash(&refresh_token),
                    now,
                    expires_at,
                    access.expires_at,
                )
                .await?;
                AuditEvent::new(Event::Refresh, client)
                    .user(user.id)
                    .detail(json!({ "session_id": session_id }))
                    .record(conn)
                    .await?;
                Ok::<_, Error>(RefreshOutcome::Rotated(convert::IssuedSession {
                    session_id,
                    access,
                    refresh_token,
                    refresh_expires_at: expires_at,
                }))
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated(issued) => Ok(Response::new(pb::RefreshResponse {
                session: Some(convert::session(issued)),
            })),
            RefreshOutcome::Refused(message) => Err(Error::Unauthenticated(message.into()).into()),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let state = &self.state;
        let client = client_addr(&request);
        let (metadata, _, request) = request.into_parts();
        let refresh_token = request.refresh_token.trim();
        let now = Utc::now();
        let mut conn = db::connection(&state.pool).await?;

        let (session_id, user_id) = if refresh_token.is_empty() {
            if bearer_token(&metadata).is_err() {
                return Err(Error::Unauthenticated(
                    "send the session's refresh token, or its access token as \
                     `authorization: Bearer <access_token>`"
                        .into(),
                )
                .into());
            }
            let caller = state.authenticate(&metadata, &mut conn).await?;
            (caller.session.id, caller.user.id)
        } else {
            let session_id = db::sessions::find_refresh_token_session(
                &mut conn,
                &refresh_token_hash(refresh_token),
            )
            .await?
            .ok_or_else(|| Error::Unauthenticated("refresh token is not valid".into()))?;
            let user_id = db::sessions::find_with_user(&mut conn, session_id)
                .await?
                .map(|(session, _)| session.user_id)
                .ok_or_else(|| Error::Unauthenticated("refresh token is not valid".into()))?;
            (session_id, user_id)
        };
        conn.transaction(async |conn| {
            let revoked = db::sessions::revoke(conn, session_id, RevokeReason::Logout, now).await?;
            AuditEvent::new(Event::Logout, client)
                .user(user_id)
                .detail(json!({ "session_id": session_id, "was_live": revoked }))
                .record(conn)
                .await?;
            Ok::<_, Error>(())
        })
        .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let state = &self.state;
        let mut conn = db::connection(&state.pool).await?;
        let caller = state.authenticate(request.metadata(), &mut conn).await?;
        Ok(Response::new(pb::WhoAmIResponse {
            user: Some(convert::user(&caller.user)),
            session_id: caller.session.id.to_string(),
            access_token_expire_time: Some(prost_types::Timestamp {
                seconds: caller.claims.exp,
                nanos: 0,
            }),
        }))
    }

    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self
            .state
            .signer
            .published_keys()
            .iter()
            .map(|key| pb::JsonWebKey {
                kid: key.kid.clone(),
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: key.x.clone(),
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            })
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }
}
