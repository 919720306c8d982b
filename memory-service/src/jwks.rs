//! The auth-service's public keys (JWKS), fetched over its GetJwks RPC at
//! start-up, periodically, and when a token names a key we do not know
//! (rate-limited, so unknown `kid`s cannot make us hammer the auth-service).

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ninaivalaigal::{
    auth_v1::{GetJwksRequest, auth_service_client::AuthServiceClient},
    metrics::Metrics,
    token::TokenVerifier,
};
use tokio::{sync::Mutex, time::Instant};
use tonic::transport::{Channel, Endpoint};

/// Fewest seconds between two on-demand fetches.
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(5);
/// How often to retry while no keys have been fetched yet.
const RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(2);

/// Where the keys come from, and the verifier they go into.
pub struct JwksSource {
    url: String,
    client: AuthServiceClient<Channel>,
    verifier: Arc<TokenVerifier>,
    has_keys: AtomicBool,
    last_fetch: Mutex<Option<Instant>>,
    /// Where fetch results are counted, once [`Self::observe`] is called.
    metrics: OnceLock<Metrics>,
}

/// Key fetches from the auth-service, by result.
const FETCHES: &str = "ninaivalaigal_jwks_fetches_total";

impl JwksSource {
    /// A source for the auth-service at `url`; connects lazily.
    pub fn new(url: &str, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        // Balanced over every auth-service replica the name resolves to.
        let channel = ninaivalaigal::balance::channel(url, |endpoint: Endpoint, _host| {
            Ok(endpoint
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5)))
        })
        .map_err(|error| anyhow::anyhow!("NINAIVALAIGAL_AUTH_URL {url:?}: {error}"))?;
        Ok(Self {
            url: url.to_owned(),
            client: AuthServiceClient::new(channel),
            verifier,
            has_keys: AtomicBool::new(false),
            last_fetch: Mutex::new(None),
            metrics: OnceLock::new(),
        })
    }

    /// Counts every fetch from now on in `metrics`, by result: `ok`,
    /// `unreachable` (the RPC failed), `no_keys` (none of Ed25519) or
    /// `bad_keys` (keys that do not parse).
    pub fn observe(&self, metrics: &Metrics) {
        metrics.describe(
            FETCHES,
            "Fetches of the auth-service's public keys (GetJwks), by result: ok, unreachable, no_keys, bad_keys.",
        );
        let _ = self.metrics.set(metrics.clone());
    }

    fn count(&self, result: &'static str) {
        if let Some(metrics) = self.metrics.get() {
            metrics.counter(FETCHES, &[("result", result)]).increment(1);
        }
    }

    /// The auth-service's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True once at least one key has been loaded.
    pub fn has_keys(&self) -> bool {
        self.has_keys.load(Ordering::Acquire)
    }

    /// Fetches the keys now unless a fetch happened in the last few seconds;
    /// waits for a fetch already under way. True when this call fetched
    /// successfully.
    pub async fn refresh_soon(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_FETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch().await
    }

    /// Fetches every `every` (sooner while there are no keys) forever.
    pub async fn keep_fresh(&self, every: Duration) {
        loop {
            {
                let mut last = self.last_fetch.lock().await;
                *last = Some(Instant::now());
                self.fetch().await;
            }
            let wait = if self.has_keys() {
                every
            } else {
                RETRY_WITHOUT_KEYS.min(every)
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch(&self) -> bool {
        let (fetched, result) = self.fetch_keys().await;
        self.count(result);
        fetched
    }

    /// Fetches and loads the keys: whether that succeeded, and the result's label.
    async fn fetch_keys(&self) -> (bool, &'static str) {
        let response = match self.client.clone().get_jwks(GetJwksRequest {}).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tracing::warn!(url = %self.url, code = ?status.code(), message = status.message(), "cannot fetch the auth-service's public keys");
                return (false, "unreachable");
            }
        };
        let keys: Vec<(&str, &str)> = response
            .keys
            .iter()
            .filter(|key| {
                key.kty == "OKP"
                    && key.crv == "Ed25519"
                    && (key.alg.is_empty() || key.alg == "EdDSA")
                    && !key.kid.is_empty()
            })
            .map(|key| (key.kid.as_str(), key.x.as_str()))
            .collect();
        match self.verifier.set_ed25519_keys(keys) {
            Ok(count) => {
                self.has_keys.store(count > 0, Ordering::Release);
                if count == 0 {
                    tracing::warn!(url = %self.url, "the auth-service publishes no Ed25519 keys; is it in HS256 mode? then set NINAIVALAIGAL_JWT_SECRET here too");
                    (true, "no_keys")
                } else {
                    tracing::debug!(count, "loaded the auth-service's public keys");
                    (true, "ok")
                }
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "the auth-service's public keys do not parse");
                (false, "bad_keys")
            }
        }
    }
}
