//! Opening a session and issuing its tokens.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::rules;
use crate::{
    db::{
        self,
        models::{Session, User},
    },
    error::Result,
    tokens::{AccessToken, TokenSigner, new_refresh_token, refresh_token_hash},
};

/// Issues the tokens of sessions.
#[derive(Clone, Copy)]
pub struct Issuer<'a> {
    /// Signs access tokens.
    pub signer: &'a TokenSigner,
    /// How long a session lives past its latest refresh.
    pub refresh_lifetime: chrono::Duration,
}

/// A session just opened or rotated, with its secrets (sent once, never
/// stored: the database keeps only the refresh token's hash).
pub struct IssuedSession {
    pub session_id: Uuid,
    pub access: AccessToken,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

impl Issuer<'_> {
    /// Fresh tokens for `user` in session `session_id`, at `now`.
    pub(super) fn issue(
        &self,
        user: &User,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<IssuedSession> {
        Ok(IssuedSession {
            session_id,
            access: self.signer.sign(user, session_id)?,
            refresh_token: new_refresh_token(),
            refresh_expires_at: now + self.refresh_lifetime,
        })
    }
}

/// Creates a session for `user` and returns it with its tokens. Call it in a
/// transaction: the account row is share-locked and checked again, so an
/// account disabled or deleted since it was read gets no session.
pub async fn open(
    conn: &mut AsyncPgConnection,
    issuer: Issuer<'_>,
    user: &User,
) -> Result<IssuedSession> {
    let current = db::users::find_by_id_for_share(conn, user.id).await?;
    rules::may_open_session(current.as_ref())?;
    let now = Utc::now();
    let issued = issuer.issue(user, Uuid::new_v4(), now)?;
    let session = Session {
        id: issued.session_id,
        user_id: user.id,
        created_at: now,
        refreshed_at: now,
        expires_at: issued.refresh_expires_at,
        access_expires_at: issued.access.expires_at,
        revoked_at: None,
        revoked_reason: None,
    };
    db::sessions::create(conn, &session, refresh_token_hash(&issued.refresh_token)).await?;
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{keys::KeyMaterial, sessions::fixtures::user};

    fn signer() -> TokenSigner {
        TokenSigner::new(
            KeyMaterial::Shared {
                secret: b"a shared secret of at least 32 bytes".to_vec(),
            },
            "ninaivalaigal-test",
            "ninaivalaigal-test",
            Duration::from_secs(900),
            Duration::ZERO,
        )
        .expect("a signer")
    }

    #[test]
    fn issued_tokens_belong_to_the_session_and_live_the_refresh_lifetime() {
        let signer = signer();
        let issuer = Issuer {
            signer: &signer,
            refresh_lifetime: chrono::Duration::days(30),
        };
        let session_id = Uuid::from_u128(42);
        let now = Utc::now();
        let issued = issuer.issue(&user(), session_id, now).expect("issued");
        assert_eq!(issued.session_id, session_id);
        assert_eq!(issued.refresh_expires_at, now + chrono::Duration::days(30));
        let claims = signer
            .verifier()
            .verify(&issued.access.token)
            .expect("a valid access token");
        assert_eq!((claims.sid, claims.user_id), (session_id, 7));

        let next = issuer.issue(&user(), session_id, now).expect("issued");
        assert_ne!(next.refresh_token, issued.refresh_token);
    }
}
