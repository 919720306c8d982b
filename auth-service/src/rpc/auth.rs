//! `AuthService`: register, log in, refresh, log out, who am I, and the JWKS.
//! One function per RPC; what happens to sessions is decided in
//! [`crate::sessions`].

use std::net::IpAddr;

use diesel_async::AsyncConnection;
use ninaivalaigal::auth_v1 as pb;
use serde_json::json;
use tonic::metadata::MetadataMap;

use super::{AuthState, bearer_token, convert};
use crate::{
    audit::{AuditEvent, Event},
    db::{
        self,
        models::{NewUser, ROLE_ADMIN, ROLE_USER},
    },
    error::{Error, Result},
    input::{self, DisplayName, Email, NewPassword},
    sessions::{self, CheckedLogin, LoginOutcome, LogoutOf, RefreshOutcome},
};

#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AuthState,
    client: Option<IpAddr>,
    request: pb::RegisterRequest,
) -> Result<pb::RegisterResponse> {
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
            )));
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
            let issued = sessions::open(conn, state.issuer(), &user).await?;
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
    Ok(pb::RegisterResponse {
        user: Some(convert::user(&user)?),
        session: Some(convert::session(issued)?),
    })
}

#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AuthState,
    client: Option<IpAddr>,
    request: pb::LoginRequest,
) -> Result<pb::LoginResponse> {
    let email = Email::parse(&request.email)?;

    if let Some(wait) = state.throttle.check(email.as_str(), client) {
        let mut conn = db::connection(&state.pool).await?;
        AuditEvent::new(Event::LoginThrottled, client)
            .email(email.as_str())
            .record(&mut conn)
            .await?;
        return Err(Error::Throttled(wait));
    }

    // No connection is held while bcrypt runs.
    let account = {
        let mut conn = db::connection(&state.pool).await?;
        db::users::find_by_email(&mut conn, email.as_str()).await?
    };
    let password_matches = state
        .passwords
        .verify(
            &request.password,
            account.as_ref().map(|user| user.password_hash.as_str()),
        )
        .await?;

    let mut conn = db::connection(&state.pool).await?;
    let attempt = CheckedLogin {
        email: &email,
        account,
        password_matches,
        client,
    };
    match sessions::login(&mut conn, state.issuer(), &state.throttle, attempt).await? {
        LoginOutcome::LoggedIn { user, session } => Ok(pb::LoginResponse {
            user: Some(convert::user(&user)?),
            session: Some(convert::session(session)?),
        }),
        LoginOutcome::Refused(refusal) => Err(refusal.into()),
    }
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: &AuthState,
    client: Option<IpAddr>,
    request: pb::RefreshRequest,
) -> Result<pb::RefreshResponse> {
    let token = input::refresh_token(&request.refresh_token)?;
    let mut conn = db::connection(&state.pool).await?;
    match sessions::refresh(&mut conn, state.issuer(), token, client).await? {
        RefreshOutcome::Rotated(issued) => Ok(pb::RefreshResponse {
            session: Some(convert::session(issued)?),
        }),
        RefreshOutcome::Refused(refusal) => Err(refusal.into()),
    }
}

#[tracing::instrument(skip_all)]
pub async fn logout(
    state: &AuthState,
    client: Option<IpAddr>,
    metadata: &MetadataMap,
    request: pb::LogoutRequest,
) -> Result<pb::LogoutResponse> {
    let refresh_token = request.refresh_token.trim();
    let mut conn = db::connection(&state.pool).await?;
    let of = if refresh_token.is_empty() {
        if bearer_token(metadata).is_err() {
            return Err(Error::Unauthenticated(
                "send the session's refresh token, or its access token as \
                 `authorization: Bearer <access_token>`"
                    .into(),
            ));
        }
        let caller = state.authenticate(metadata, &mut conn).await?;
        LogoutOf::Session {
            session_id: caller.session.id,
            user_id: caller.user.id,
        }
    } else {
        LogoutOf::RefreshToken(refresh_token)
    };
    sessions::logout(&mut conn, of, client)
        .await?
        .into_result()?;
    Ok(pb::LogoutResponse {})
}

#[tracing::instrument(skip_all)]
pub async fn who_am_i(state: &AuthState, metadata: &MetadataMap) -> Result<pb::WhoAmIResponse> {
    let mut conn = db::connection(&state.pool).await?;
    let caller = state.authenticate(metadata, &mut conn).await?;
    Ok(pb::WhoAmIResponse {
        user: Some(convert::user(&caller.user)?),
        session_id: caller.session.id.to_string(),
        access_token_expire_time: Some(prost_types::Timestamp {
            seconds: caller.claims.exp,
            nanos: 0,
        }),
    })
}

/// The public keys that verify access tokens (none with a shared secret).
pub fn jwks(state: &AuthState) -> pb::GetJwksResponse {
    let keys = state
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
    pb::GetJwksResponse { keys }
}
