//! Which access token to send, and keeping it fresh.
//!
//! `NINAIVALAIGAL_USER_TOKEN` wins and is used as given (there is no refresh
//! token to go with it). Otherwise the saved login is used, refreshed through
//! the auth-service when less than the margin is left (one day by default;
//! at most half the token's lifetime, so short-lived tokens are not
//! refreshed on every call) or when a service refuses it. Refreshing happens
//! under the credentials lock and re-reads the file first, so concurrent `eM`
//! processes (a shell and the MCP server) spend each refresh token once.
//!
//! Saved tokens only ever go to the servers they were obtained with (see
//! [`Credentials::check_destination`]); a token from the variable goes
//! wherever the user points it.

use chrono::{DateTime, Utc};
use ninaivalaigal::{
    auth_v1::{self, RefreshRequest, auth_service_client::AuthServiceClient},
    timestamp::from_timestamp,
};
use prost_types::Timestamp;
use tonic::{Code, transport::Channel};

use crate::{
    config::Config,
    credentials::Credentials,
    exit::{Failure, Kind, Server},
};

/// An access token and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// From `NINAIVALAIGAL_USER_TOKEN`.
    Env(String),
    /// From the credentials file.
    Saved(String),
}

impl Token {
    /// The token itself.
    pub fn value(&self) -> &str {
        match self {
            Token::Env(token) | Token::Saved(token) => token,
        }
    }
}

/// Token handling for one process.
#[derive(Clone)]
pub struct Session {
    config: Config,
    auth: AuthServiceClient<Channel>,
}

impl Session {
    /// A session reading `config`'s credentials and refreshing through `auth`.
    pub fn new(config: Config, auth: AuthServiceClient<Channel>) -> Self {
        Self { config, auth }
    }

    /// The token to send now to `to`, refreshed first if it is about to expire.
    pub async fn token(&self, to: &Server) -> Result<Token, Failure> {
        if let Some(token) = &self.config.env_token {
            return Ok(Token::Env(token.clone()));
        }
        let saved = self
            .config
            .credentials
            .load()?
            .ok_or_else(Failure::not_logged_in)?;
        saved.check_destination(to)?;
        if needs_refresh(&saved, Utc::now(), self.config.refresh_margin) {
            return self.refresh(&saved.access_token, false, to).await;
        }
        Ok(Token::Saved(saved.access_token))
    }

    /// A new token for `to` after `rejected` was refused by it.
    pub async fn refreshed(&self, rejected: &Token, to: &Server) -> Result<Token, Failure> {
        match rejected {
            Token::Env(_) => Err(Failure::new(
                Kind::Auth,
                "the token in NINAIVALAIGAL_USER_TOKEN was refused",
            )),
            Token::Saved(token) => self.refresh(token, true, to).await,
        }
    }

    async fn refresh(&self, stale: &str, refused: bool, to: &Server) -> Result<Token, Failure> {
        let file = &self.config.credentials;
        let _lock = file.lock().await?;
        let saved = file.load()?.ok_or_else(Failure::not_logged_in)?;
        // Read again under the lock: it may be another login by now. The
        // refresh token goes to the auth-service, the new access token to `to`.
        let auth = Server::Auth(self.config.auth_url.clone());
        saved.check_destination(&auth)?;
        saved.check_destination(to)?;
        let now = Utc::now();
        // Another process may have refreshed while we waited for the lock.
        if saved.access_token != stale && !needs_refresh(&saved, now, self.config.refresh_margin) {
            return Ok(Token::Saved(saved.access_token));
        }
        if saved.refresh_token_expire_time <= now {
            return Err(Failure::session_expired());
        }
        let request = RefreshRequest {
            refresh_token: saved.refresh_token.clone(),
        };
        match self.auth.clone().refresh(request).await {
            Ok(response) => {
                let session = response
                    .into_inner()
                    .session
                    .ok_or_else(incomplete_session)?;
                let renewed = renew(&saved, session, now)?;
                file.save(&renewed)?;
                Ok(Token::Saved(renewed.access_token))
            }
            // The auth-service is down but the token still works: carry on.
            Err(status)
                if status.code() == Code::Unavailable
                    && !refused
                    && saved.access_token_expire_time > now =>
            {
                Ok(Token::Saved(saved.access_token))
            }
            Err(status) => Err(match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                    Failure::from_status(&status, &auth)
                }
                _ => Failure::session_expired(),
            }),
        }
    }
}

/// True when less than the margin (capped at half the token's lifetime) is
/// left of the access token.
pub fn needs_refresh(saved: &Credentials, now: DateTime<Utc>, margin: chrono::Duration) -> bool {
    let lifetime = saved.access_token_expire_time - saved.obtain_time;
    let threshold = margin.min(lifetime / 2);
    saved.access_token_expire_time - now < threshold
}

/// Credentials for a session the auth-service just issued.
pub fn credentials_for(
    user: &auth_v1::User,
    session: auth_v1::Session,
    server_url: &str,
    auth_url: &str,
    now: DateTime<Utc>,
) -> Result<Credentials, Failure> {
    Ok(Credentials {
        email: user.email.clone(),
        user_id: user.id,
        session_id: session.session_id,
        access_token: session.access_token,
        access_token_expire_time: time(
            "access_token_expire_time",
            session.access_token_expire_time,
        )?,
        refresh_token: session.refresh_token,
        refresh_token_expire_time: time(
            "refresh_token_expire_time",
            session.refresh_token_expire_time,
        )?,
        obtain_time: now,
        server_url: server_url.to_owned(),
        auth_url: auth_url.to_owned(),
    })
}

fn renew(
    saved: &Credentials,
    session: auth_v1::Session,
    now: DateTime<Utc>,
) -> Result<Credentials, Failure> {
    Ok(Credentials {
        session_id: if session.session_id.is_empty() {
            saved.session_id.clone()
        } else {
            session.session_id
        },
        access_token: session.access_token,
        access_token_expire_time: time(
            "access_token_expire_time",
            session.access_token_expire_time,
        )?,
        refresh_token: session.refresh_token,
        refresh_token_expire_time: time(
            "refresh_token_expire_time",
            session.refresh_token_expire_time,
        )?,
        obtain_time: now,
        ..saved.clone()
    })
}

/// A session's required time; `field` names it if it is not valid.
fn time(field: &'static str, timestamp: Option<Timestamp>) -> Result<DateTime<Utc>, Failure> {
    let timestamp = timestamp.ok_or_else(incomplete_session)?;
    from_timestamp(field, &timestamp).map_err(|error| {
        Failure::new(
            Kind::Other,
            format!("the auth-service sent a session with an invalid time: {error}"),
        )
    })
}

fn incomplete_session() -> Failure {
    Failure::new(
        Kind::Other,
        "the auth-service sent a session without its tokens or expiry times",
    )
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::credentials::tests::sample;

    #[test]
    fn a_day_long_token_is_refreshed_only_in_its_last_half() {
        let mut saved = sample();
        let start = saved.obtain_time;
        saved.access_token_expire_time = start + Duration::hours(24);
        let margin = Duration::days(1);
        assert!(!needs_refresh(&saved, start, margin));
        assert!(!needs_refresh(&saved, start + Duration::hours(11), margin));
        assert!(needs_refresh(&saved, start + Duration::hours(13), margin));
        assert!(needs_refresh(&saved, start + Duration::hours(25), margin));
    }

    #[test]
    fn a_week_long_token_is_refreshed_in_its_last_day() {
        let mut saved = sample();
        let start = saved.obtain_time;
        saved.access_token_expire_time = start + Duration::days(7);
        let margin = Duration::days(1);
        assert!(!needs_refresh(&saved, start + Duration::days(5), margin));
        assert!(needs_refresh(
            &saved,
            start + Duration::days(6) + Duration::hours(1),
            margin
        ));
    }

    #[test]
    fn an_expired_token_always_needs_refresh() {
        let mut saved = sample();
        saved.access_token_expire_time = saved.obtain_time - Duration::seconds(1);
        assert!(needs_refresh(&saved, Utc::now(), Duration::zero()));
    }

    #[test]
    fn renewing_keeps_the_account_and_replaces_the_tokens() {
        let saved = sample();
        let now = Utc::now();
        let session = auth_v1::Session {
            access_token: "new-access".to_owned(),
            access_token_expire_time: Some(Timestamp {
                seconds: now.timestamp() + 3600,
                nanos: 0,
            }),
            refresh_token: "new-refresh".to_owned(),
            refresh_token_expire_time: Some(Timestamp {
                seconds: now.timestamp() + 86_400,
                nanos: 0,
            }),
            session_id: String::new(),
        };
        let renewed = renew(&saved, session, now).unwrap();
        assert_eq!(renewed.email, saved.email);
        assert_eq!(renewed.session_id, saved.session_id);
        assert_eq!(renewed.server_url, saved.server_url);
        assert_eq!(renewed.access_token, "new-access");
        assert_eq!(renewed.refresh_token, "new-refresh");
        assert_eq!(renewed.obtain_time, now);
    }

    #[test]
    fn a_session_with_an_invalid_expiry_is_refused_naming_the_field() {
        let saved = sample();
        let session = auth_v1::Session {
            access_token: "a".to_owned(),
            access_token_expire_time: Some(Timestamp {
                seconds: Utc::now().timestamp(),
                nanos: 0,
            }),
            refresh_token_expire_time: Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        };
        let failure = renew(&saved, session, Utc::now()).unwrap_err();
        assert_eq!(failure.kind, Kind::Other);
        assert!(
            failure.message.contains("refresh_token_expire_time"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_session_without_expiry_is_refused() {
        let saved = sample();
        let session = auth_v1::Session {
            access_token: "a".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            renew(&saved, session, Utc::now()).unwrap_err().kind,
            Kind::Other
        );
    }
}
