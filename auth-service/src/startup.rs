//! Builds the auth-service (keys, pool, hashing, throttles, health,
//! reflection, RPC services) and serves it until the shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::Utc;
use ninaivalaigal::auth_v1::{
    admin_service_server::AdminServiceServer, auth_service_server::AuthServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

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

/// A bound, ready-to-serve auth-service.
pub struct Application {
    listener: TcpListener,
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
            &settings.jwt_issuer,
            &settings.jwt_audience,
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
        let listener =
            ninaivalaigal::grpc::bind(settings.listen_addr, "NINAIVALAIGAL_AUTH_LISTEN_ADDR")
                .await?;
        Ok(Self {
            listener,
            settings,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.listen_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AuthServiceServer<rpc::AuthRpc>>()
            .await;
        health_reporter
            .set_serving::<AdminServiceServer<rpc::AdminRpc>>()
            .await;
        let (reflection_v1, reflection_v1alpha) = ninaivalaigal::grpc::reflection_services()?;
        let housekeeping =
            tokio::spawn(housekeeping(self.state.clone(), self.settings.jwt_leeway()));

        let addr = self.local_addr();
        tracing::info!(%addr, "auth-service listening");
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(AuthServiceServer::new(rpc::AuthRpc::new(
                self.state.clone(),
            )))
            .add_service(AdminServiceServer::new(rpc::AdminRpc::new(
                self.state.clone(),
            )))
            .serve_with_incoming_shutdown(incoming(self.listener), shutdown)
            .await
            .context("gRPC server failed");
        housekeeping.abort();
        served?;
        tracing::info!("auth-service stopped");
        Ok(())
    }
}

/// Accepted connections with TCP_NODELAY: `TcpIncoming::from` leaves Nagle's
/// algorithm on (the builder's `tcp_nodelay` does not apply to an incoming
/// stream), which costs about 40 ms per response that spans several writes
/// (delayed ACK), e.g. every Login.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Promotes the configured admins once, then now and then forgets recovered
/// throttle keys and revocations whose tokens have expired. Database trouble
/// is logged and retried on the next round, never fatal.
async fn housekeeping(state: Arc<AuthState>, leeway: Duration) {
    let emails: Vec<String> = state.admin_emails.iter().cloned().collect();
    let mut promoted = emails.is_empty();
    let mut ticks = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    loop {
        ticks.tick().await;
        state.throttle.prune();
        let Ok(mut conn) = db::connection(&state.pool).await else {
            tracing::warn!("housekeeping: database unavailable; will retry");
            continue;
        };
        if !promoted {
            match db::users::promote_to_admin(&mut conn, &emails).await {
                Ok(count) => {
                    promoted = true;
                    if count > 0 {
                        tracing::info!(
                            count,
                            "promoted accounts listed in NINAIVALAIGAL_ADMIN_EMAILS"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot promote admins; will retry"),
            }
        }
        // Keep revocations until the tokens they cover are past exp plus
        // the leeway, with an hour to spare for verifiers with a larger one.
        let margin =
            chrono::Duration::from_std(leeway).unwrap_or_default() + chrono::Duration::hours(1);
        if let Err(error) = db::sessions::prune_revocations(&mut conn, Utc::now() - margin).await {
            tracing::warn!(%error, "cannot prune expired revocations; will retry");
        }
    }
}
