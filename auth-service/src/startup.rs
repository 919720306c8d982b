//! Builds the auth-service (keys, pool, hashing, throttles, RPC services)
//! and serves it in the shared server frame until the shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use ninaivalaigal::{
    auth_v1::{admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer},
    db::PgPool,
    server::{BodyLimits, Readiness, ServerFrame, Services},
};

use crate::{
    audit::AuditLimiter,
    client::TrustedProxies,
    config::Settings,
    housekeeping::{self, Housekeeping},
    keys::KeyMaterial,
    metrics::AuthMetrics,
    passwords::{HashingLimits, Passwords},
    rpc::{self, AuthState},
    throttle::{LoginThrottle, RegistrationThrottle},
    tokens::TokenSigner,
};

/// Largest request of any auth RPC: an email, a name, a password of at
/// most 72 bytes, a token. Nothing here needs more, and every request of
/// this service arrives before anyone is authenticated.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// A bound, ready-to-serve auth-service.
pub struct Application {
    frame: ServerFrame,
    settings: Settings,
    state: Arc<AuthState>,
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
        let throttle = LoginThrottle::new(
            settings.login_failures_per_account,
            settings.login_failures_per_client,
            Duration::from_secs(settings.login_failure_recovery_seconds),
        )
        .map_err(|error| anyhow::anyhow!("{error:#}"))?;
        let registrations = RegistrationThrottle::new(
            settings.registrations_per_client,
            Duration::from_secs(settings.registration_recovery_seconds),
        )
        .map_err(|error| anyhow::anyhow!("{error:#}"))?;
        let audit = AuditLimiter::new(settings.audit_failures_per_minute)?;
        let passwords = Passwords::new(
            settings.bcrypt_cost,
            HashingLimits {
                concurrency: settings.hashing_concurrency(),
                new_password_concurrency: settings.registration_hashing_concurrency(),
                queue_timeout: Duration::from_secs(settings.hashing_queue_timeout_seconds),
                priority: settings.hashing_priority,
            },
        )
        .await
        .map_err(|error| anyhow::anyhow!("NINAIVALAIGAL_BCRYPT_COST: {error}"))?;
        let mut frame = ServerFrame::bind(
            "auth-service",
            settings.listen_addr,
            "NINAIVALAIGAL_AUTH_LISTEN_ADDR",
            settings.transport.clone(),
        )
        .await?;
        frame.expose_metrics(&settings.metrics).await?;
        let state = Arc::new(AuthState {
            pool: settings.database.pool()?,
            passwords,
            signer,
            throttle,
            registrations,
            audit,
            proxies: TrustedProxies::new(settings.trusted_proxies.clone()),
            refresh_lifetime,
            metrics: AuthMetrics::new(frame.metrics()),
        });
        ninaivalaigal::db::observe_pool(
            &state.pool,
            settings.database.db_pool_size,
            frame.metrics(),
        );
        Ok(Self {
            frame,
            settings,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.frame.local_addr().unwrap_or(self.settings.listen_addr)
    }

    /// The address of the metrics endpoint, when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.frame.metrics_addr()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            mut frame,
            settings,
            state,
        } = self;
        frame.spawn(housekeeping::run(
            state.clone(),
            Housekeeping {
                interval: settings.housekeeping_seconds.into(),
                leeway: settings.jwt_leeway(),
                audit_retention: settings.audit_retention(),
            },
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
