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
        models::{NewUser, ROLE_USER, User},
    },
    error::{Attempts, Error, Result},
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

    if let Err(wait) = state.registrations.admit(client) {
        state.metrics.registration_throttled();
        refused(state, client, &email, "throttled").await?;
        return Err(Error::Throttled(Attempts::Registrations, wait));
    }
    // Hashed whether or not the email is taken, so the answer takes as long
    // either way and its timing does not tell which emails have accounts.
    let password_hash = state.passwords.hash(&password).await?;

    let mut conn = db::connection(&state.pool).await?;
    let created = conn
        .transaction(async |conn| {
            let user = db::users::insert(
                conn,
                &NewUser {
                    email: email.as_str(),
                    name: name.as_str(),
                    password_hash: &password_hash,
                    // Never admin: that role is given only by the operator
                    // or an admin (`crate::admins`).
                    role: ROLE_USER,
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
        .await;
    let (user, issued) = match created {
        Ok(created) => created,
        Err(error @ Error::AlreadyExists(_)) => {
            refused(state, client, &email, "email_taken").await?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    tracing::info!(user_id = user.id, "registered");
    Ok(pb::RegisterResponse {
        user: Some(convert::user(&user)?),
        session: Some(convert::session(issued)?),
    })
}

/// Audits a refused registration (within the client's failure-row limit).
async fn refused(
    state: &AuthState,
    client: Option<IpAddr>,
    email: &Email,
    reason: &str,
) -> Result<()> {
    let mut conn = db::connection(&state.pool).await?;
    AuditEvent::new(Event::RegisterRefused, client)
        .email(email.as_str())
        .detail(json!({ "reason": reason }))
        .record_failure(&mut conn, &state.audit)
        .await
}

#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AuthState,
    client: Option<IpAddr>,
    request: pb::LoginRequest,
) -> Result<pb::LoginResponse> {
    let email = Email::parse(&request.email)?;

    // The attempt takes its cells before bcrypt, so concurrent guesses
    // cannot all pass the check before any of them is counted.
    let reservation = match state.throttle.reserve(email.as_str(), client) {
        Ok(reservation) => reservation,
        Err(wait) => {
            state.metrics.login_throttled();
            let mut conn = db::connection(&state.pool).await?;
            AuditEvent::new(Event::LoginThrottled, client)
                .email(email.as_str())
                .record_failure(&mut conn, &state.audit)
                .await?;
            return Err(Error::Throttled(Attempts::FailedLogins, wait));
        }
    };

    let checked = check_password(state, &email, &request.password).await;
    let (account, password_matches) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            // Nothing was learned about the password.
            reservation.give_back();
            return Err(error);
        }
    };
    // Only a wrong password keeps its cells.
    if password_matches {
        reservation.give_back();
    } else {
        drop(reservation);
    }

    let account_exists = account.is_some();
    let mut conn = db::connection(&state.pool).await?;
    let attempt = CheckedLogin {
        email: &email,
        account,
        password_matches,
        client,
    };
    match sessions::login(&mut conn, state.issuer(), &state.audit, attempt).await? {
        LoginOutcome::LoggedIn { user, session } => Ok(pb::LoginResponse {
            user: Some(convert::user(&user)?),
            session: Some(convert::session(session)?),
        }),
        LoginOutcome::Refused(refusal) => {
            state.metrics.login_refused(refusal, account_exists);
            Err(refusal.into())
        }
    }
}

/// The account `email` names (if any) and whether `password` is its
/// password. No connection is held while bcrypt runs.
async fn check_password(
    state: &AuthState,
    email: &Email,
    password: &str,
) -> Result<(Option<User>, bool)> {
    let account = {
        let mut conn = db::connection(&state.pool).await?;
        db::users::find_by_email(&mut conn, email.as_str()).await?
    };
    let matches = state
        .passwords
        .verify(
            password,
            account.as_ref().map(|user| user.password_hash.as_str()),
        )
        .await?;
    Ok((account, matches))
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: &AuthState,
    client: Option<IpAddr>,
    request: pb::RefreshRequest,
) -> Result<pb::RefreshResponse> {
    let token = input::refresh_token(&request.refresh_token)?;
    let mut conn = db::connection(&state.pool).await?;
    match sessions::refresh(&mut conn, state.issuer(), &state.audit, token, client).await? {
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
