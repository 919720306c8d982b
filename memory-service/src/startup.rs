//! Builds the memory-service (token verifier and key source, revocation
//! list, pool, the authenticated RPC service) and serves it in the shared
//! server frame until the shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ninaivalaigal::{
    db::PgPool,
    memory_v1::memory_service_server::MemoryServiceServer,
    server::{BodyLimits, Readiness, ServerFrame, Services},
    token::TokenVerifier,
};
use tokio::{sync::OnceCell, time::Instant};
use tower::Layer;

use crate::{
    auth::{Authenticator, RequireUserLayer},
    config::Settings,
    exports::Exports,
    jwks::JwksSource,
    quota::Quota,
    revocation::RevocationList,
    rpc::{MemoryRpc, MemoryState},
    writes::BatchLimits,
};

/// Largest request of every RPC but the writes: names, filters, page tokens.
const SMALL_REQUEST_BYTES: usize = 16 * 1024;

/// A bound, ready-to-serve memory-service.
pub struct Application {
    frame: ServerFrame,
    settings: Settings,
    pool: PgPool,
    verifier: Arc<TokenVerifier>,
    jwks: Option<Arc<JwksSource>>,
}

impl Application {
    /// Checks the settings and binds the listener (port 0 picks a free port).
    /// The auth-service need not be up yet: keys are fetched in the background.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let jwt = &settings.jwt;
        let (verifier, jwks) = match &jwt.secret {
            Some(secret) => (
                Arc::new(TokenVerifier::hs256(
                    secret.expose().as_bytes(),
                    &jwt.issuer,
                    &jwt.audience,
                    jwt.leeway(),
                )),
                None,
            ),
            None => {
                let verifier = Arc::new(TokenVerifier::ed25519(
                    &jwt.issuer,
                    &jwt.audience,
                    jwt.leeway(),
                ));
                let jwks = JwksSource::new(&settings, verifier.clone())?;
                (verifier, Some(Arc::new(jwks)))
            }
        };
        let pool = settings.database.pool()?;
        let mut frame = ServerFrame::bind(
            "memory-service",
            settings.listen_addr,
            "NINAIVALAIGAL_MEMORY_LISTEN_ADDR",
            settings.transport.clone(),
        )
        .await?;
        frame.expose_metrics(&settings.metrics).await?;
        Ok(Self {
            frame,
            settings,
            pool,
            verifier,
            jwks,
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
            pool,
            verifier,
            jwks,
        } = self;
        let metrics = frame.metrics().clone();
        ninaivalaigal::db::observe_pool(&pool, settings.database.db_pool_size, &metrics);

        let revocations = Arc::new(RevocationList::new(settings.jwt_leeway()));
        revocations.observe(&metrics);
        if let Err(error) = revocations.reload(&pool).await {
            // Not ready, and requests are UNAVAILABLE, until a poll succeeds.
            tracing::warn!(%error, "cannot read the revoked-session list yet");
        }
        frame.spawn({
            let (revocations, pool) = (revocations.clone(), pool.clone());
            let every = settings.revocation_poll_seconds.0;
            async move { revocations.poll(pool, every).await }
        });
        if let Some(jwks) = &jwks {
            jwks.observe(&metrics);
            let jwks = jwks.clone();
            let every = settings.jwks_refresh_seconds.0;
            frame.spawn(async move { jwks.keep_fresh(every).await });
        }

        let authenticator = Arc::new(Authenticator::new(
            verifier,
            jwks.clone(),
            revocations.clone(),
            metrics,
        ));
        let rpc = MemoryRpc::new(Arc::new(MemoryState {
            pool: pool.clone(),
            max_memory_bytes: settings.max_memory_bytes as usize,
            max_response_bytes: settings.max_response_bytes as usize,
            quota: Quota::new(
                settings.max_memories_per_user,
                settings.max_memory_bytes_per_user,
            ),
            batch: BatchLimits {
                max_memories: settings.max_batch_memories as usize,
                max_bytes: settings.max_batch_request_bytes(),
            },
            exports: Exports::new(
                settings.max_concurrent_exports as usize,
                settings.export_timeout_seconds.0,
            ),
            deployment: OnceCell::new(),
        }));
        let batch_too_large = format!(
            "the batch is too large: at most {} bytes per request (NINAIVALAIGAL_MAX_BATCH_BYTES); send fewer memories per batch",
            settings.max_batch_request_bytes()
        );
        let body_limits = BodyLimits::new(SMALL_REQUEST_BYTES)
            .with(
                "/ninaivalaigal.memory.v1.MemoryService/Remember",
                settings.max_request_bytes(),
                format!(
                    "the request is too large: a memory may hold at most {} bytes of JSON (NINAIVALAIGAL_MAX_MEMORY_BYTES)",
                    settings.max_memory_bytes
                ),
            )
            .with(
                "/ninaivalaigal.memory.v1.MemoryService/RememberMany",
                settings.max_batch_request_bytes(),
                batch_too_large.clone(),
            )
            .with(
                "/ninaivalaigal.memory.v1.MemoryService/ImportMemories",
                settings.max_batch_request_bytes(),
                batch_too_large,
            );
        let memory_service = RequireUserLayer::new(authenticator)
            .layer(MemoryServiceServer::new(rpc).max_decoding_message_size(body_limits.largest()));
        tracing::info!(hs256 = jwks.is_none(), "verifying access tokens");
        let readiness = MemoryReadiness {
            pool,
            schema_version: ninaivalaigal::db::expected_schema_version()?,
            jwks,
            revocations,
            revocations_max_age: RevocationList::max_age(settings.revocation_poll_seconds.0),
        };
        frame
            .serve(
                Services::new().with(memory_service),
                body_limits,
                readiness,
                shutdown,
            )
            .await
    }
}

/// Ready while the service can do its work: the database answers with the
/// schema this binary expects, the revoked-session list has been read
/// recently (without it a revoked token could pass) and, in EdDSA mode, the
/// auth-service's public keys have been fetched (without them every token
/// would be refused).
struct MemoryReadiness {
    pool: PgPool,
    schema_version: String,
    jwks: Option<Arc<JwksSource>>,
    revocations: Arc<RevocationList>,
    revocations_max_age: Duration,
}

impl Readiness for MemoryReadiness {
    async fn check(&self) -> Result<(), String> {
        ninaivalaigal::db::check_ready(&self.pool, &self.schema_version)
            .await
            .map_err(|error| format!("database: {error:#}"))?;
        self.revocations
            .freshness(Instant::now(), self.revocations_max_age)?;
        match &self.jwks {
            Some(jwks) if !jwks.has_keys() => Err(format!(
                "no public keys from the auth-service at {} yet",
                jwks.url()
            )),
            _ => Ok(()),
        }
    }
}
