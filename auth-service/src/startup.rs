//! Builds the auth-service (keys, pool, hashing, throttles, RPC services)
//! and serves it in the shared server frame until the shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::Utc;
use ninaivalaigal::{
    auth_v1::{admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer},
    db::PgPool,
    server::{BodyLimits, Readiness, ServerFrame, Services},
};

use crate::{
    config::Settings,
    db,
    input::Email,
    keys::KeyMaterial,
    passwords::Passwords,
    rpc::{self, AuthState},
    throttle::LoginThrottle,
    tokens::TokenSigner,
};

/// How often stale throttle state and expired revocations are dropped.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// Largest request of any auth RPC: an email, a name, a password of at
/// most 72 bytes, a token. Nothing here needs more, and every request of
/// this service arrives before anyone is authenticated.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// A bound, ready-to-serve auth-service.
pub struct Application {
    frame: ServerFrame,
    settings: Settings,
    state: Arc<AuthState>,
    /// True while the accounts in NINAIVALAIGAL_ADMIN_EMAILS still need promoting.
    admins_pending: bool,
}

impl Application {
    /// Checks the settings, loads the keys and binds the listener (port 0
    /// picks a free port). Every configuration error comes back as one line
    /// that names the setting.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys = KeyMaterial::load(&settings)?;
        let signer = TokenSigner::new(
            keys,
            &settings.jwt.issuer,
            &settings.jwt.audience,
            settings.access_token_lifetime(),
            settings.jwt_leeway(),
        )?;
        if settings.jwt_expiration_hours == 0 {
            anyhow::bail!("NINAIVALAIGAL_JWT_EXPIRATION_HOURS must be at least 1");
        }
        if settings.refresh_token_days == 0 {
            anyhow::bail!("NINAIVALAIGAL_REFRESH_TOKEN_DAYS must be at least 1");
        }
        let refresh_lifetime = chrono::Duration::from_std(settings.refresh_token_lifetime())
            .context("NINAIVALAIGAL_REFRESH_TOKEN_DAYS is too large")?;
        let admin_emails = settings
            .admin_emails
            .iter()
            .filter(|email| !email.trim().is_empty())
            .map(|email| {
                Email::parse(email)
                    .map(|email| email.as_str().to_owned())
                    .map_err(|error| {
                        anyhow::anyhow!("NINAIVALAIGAL_ADMIN_EMAILS: {email:?}: {error}")
                    })
            })
            .collect::<anyhow::Result<_>>()?;
        let throttle = LoginThrottle::new(
            settings.login_failures_per_account,
            settings.login_failures_per_client,
            Duration::from_secs(settings.login_failure_recovery_seconds),
        )
        .map_err(|error| anyhow::anyhow!("{error:#}"))?;
        let passwords = Passwords::new(
            settings.bcrypt_cost,
            settings.hashing_concurrency(),
            Duration::from_secs(settings.hashing_queue_timeout_seconds),
        )
        .await
        .map_err(|error| anyhow::anyhow!("NINAIVALAIGAL_BCRYPT_COST: {error}"))?;
        let state = Arc::new(AuthState {
            pool: settings.database.pool(),
            passwords,
            signer,
            throttle,
            refresh_lifetime,
            admin_emails,
        });
        let frame = ServerFrame::bind(
            "auth-service",
            settings.listen_addr,
            "NINAIVALAIGAL_AUTH_LISTEN_ADDR",
            settings.transport.clone(),
        )
        .await?;
        // Promote the listed admins now, while nothing else uses the pool; if
        // the database is not up yet, housekeeping retries (start-up does
        // not depend on the database).
        let admins_pending = !promote_admins(&state).await;
        Ok(Self {
            frame,
            settings,
            state,
            admins_pending,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.frame.local_addr().unwrap_or(self.settings.listen_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            mut frame,
            settings,
            state,
            admins_pending,
        } = self;
        frame.spawn(housekeeping(
            state.clone(),
            settings.jwt_leeway(),
            admins_pending,
        ));
        let services = Services::new()
            .with(
                AuthServiceServer::new(rpc::AuthRpc::new(state.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .with(
                AdminServiceServer::new(rpc::AdminRpc::new(state.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            );
        let readiness = AuthReadiness {
            pool: state.pool.clone(),
            schema_version: ninaivalaigal::db::expected_schema_version()?,
        };
        frame
            .serve(
                services,
                BodyLimits::new(MAX_REQUEST_BYTES),
                readiness,
                shutdown,
            )
            .await
    }
}

/// Ready while the database answers with the schema this binary expects:
/// without it nobody can register, log in or refresh.
struct AuthReadiness {
    pool: PgPool,
    schema_version: String,
}

impl Readiness for AuthReadiness {
    async fn check(&self) -> Result<(), String> {
        ninaivalaigal::db::check_ready(&self.pool, &self.schema_version)
            .await
            .map_err(|error| format!("database: {error:#}"))
    }
}

/// Promotes the accounts in NINAIVALAIGAL_ADMIN_EMAILS to admin; false when
/// the database could not be reached.
async fn promote_admins(state: &AuthState) -> bool {
    if state.admin_emails.is_empty() {
        return true;
    }
    let emails: Vec<String> = state.admin_emails.iter().cloned().collect();
    let promoted = match db::connection(&state.pool).await {
        Ok(mut conn) => db::users::promote_to_admin(&mut conn, &emails).await,
        Err(error) => Err(error),
    };
    match promoted {
        Ok(count) => {
            if count > 0 {
                tracing::info!(
                    count,
                    "promoted accounts listed in NINAIVALAIGAL_ADMIN_EMAILS"
                );
            }
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot promote admins yet; will retry");
            false
        }
    }
}

/// Now and then: promotes the listed admins if start-up could not, forgets
/// recovered throttle keys and revocations whose tokens have expired.
/// Database trouble is logged and retried on the next round, never fatal.
async fn housekeeping(state: Arc<AuthState>, leeway: Duration, mut admins_pending: bool) {
    let first = tokio::time::Instant::now() + HOUSEKEEPING_INTERVAL;
    let mut ticks = tokio::time::interval_at(first, HOUSEKEEPING_INTERVAL);
    loop {
        ticks.tick().await;
        state.throttle.prune();
        if admins_pending {
            admins_pending = !promote_admins(&state).await;
        }
        let Ok(mut conn) = db::connection(&state.pool).await else {
            tracing::warn!("housekeeping: database unavailable; will retry");
            continue;
        };
        // Keep revocations until the tokens they cover are past exp plus
        // the leeway, with an hour to spare for verifiers with a larger one.
        let margin =
            chrono::Duration::from_std(leeway).unwrap_or_default() + chrono::Duration::hours(1);
        if let Err(error) = db::sessions::prune_revocations(&mut conn, Utc::now() - margin).await {
            tracing::warn!(%error, "cannot prune expired revocations; will retry");
        }
    }
}
