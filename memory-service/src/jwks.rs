//! The auth-service's public keys (JWKS), fetched over its GetJwks RPC at
//! start-up, periodically, and when a token names a key we do not know
//! (rate-limited, so unknown `kid`s cannot make us hammer the auth-service).
//! Over TLS when the URL is `https://`: whoever could change the keys in
//! transit could forge any user's token, so plaintext is refused unless the
//! auth-service is on this machine or NINAIVALAIGAL_ALLOW_PLAINTEXT says so.

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
    tls::{PemSetting, grpc_client_config, is_loopback},
    token::TokenVerifier,
};
use tokio::{sync::Mutex, time::Instant};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::config::Settings;

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
    /// A source for the auth-service at `settings.auth_url`, with the TLS
    /// the settings ask for, balanced over every auth-service replica the
    /// name resolves to; connects lazily.
    pub fn new(settings: &Settings, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        let url = &settings.auth_url;
        let uri: http::Uri = url
            .parse()
            .map_err(|error| anyhow::anyhow!("NINAIVALAIGAL_AUTH_URL {url:?}: {error}"))?;
        let tls = client_tls(settings, &uri)?;
        let channel = ninaivalaigal::balance::channel(url, |endpoint: Endpoint, host| {
            let endpoint = endpoint
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5));
            match &tls {
                // The server name stays the host's when the endpoint holds
                // one of its addresses.
                Some(tls) => endpoint.tls_config(tls.clone().domain_name(host)),
                None => Ok(endpoint),
            }
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

/// The TLS of the key fetch: `Some` for `https://`, `None` for plaintext
/// where it is allowed. Errors name the settings.
fn client_tls(settings: &Settings, uri: &http::Uri) -> anyhow::Result<Option<ClientTlsConfig>> {
    let identity = match (&settings.auth_client_cert, &settings.auth_client_key) {
        (Some(cert), Some(key)) => Some((
            PemSetting {
                path: cert,
                setting: "NINAIVALAIGAL_AUTH_CLIENT_CERT",
            },
            PemSetting {
                path: key,
                setting: "NINAIVALAIGAL_AUTH_CLIENT_KEY",
            },
        )),
        (None, None) => None,
        _ => anyhow::bail!(
            "NINAIVALAIGAL_AUTH_CLIENT_CERT and NINAIVALAIGAL_AUTH_CLIENT_KEY go together: set both, or neither"
        ),
    };
    let url = &settings.auth_url;
    match uri.scheme_str() {
        Some("https") => {
            let ca = settings.auth_ca.as_deref().map(|path| PemSetting {
                path,
                setting: "NINAIVALAIGAL_AUTH_CA",
            });
            Ok(Some(grpc_client_config(ca, identity, HANDSHAKE_TIMEOUT)?))
        }
        Some("http") => {
            if settings.auth_ca.is_some() || identity.is_some() {
                anyhow::bail!(
                    "NINAIVALAIGAL_AUTH_CA and NINAIVALAIGAL_AUTH_CLIENT_CERT need an https:// NINAIVALAIGAL_AUTH_URL, not {url}"
                );
            }
            if !is_loopback(uri) {
                if !settings.transport.tls.allow_plaintext {
                    anyhow::bail!(
                        "NINAIVALAIGAL_AUTH_URL {url} fetches the token keys in plaintext from another machine: use https:// (with NINAIVALAIGAL_AUTH_CA), or set NINAIVALAIGAL_ALLOW_PLAINTEXT=true on a network encrypted by other means"
                    );
                }
                tracing::warn!(
                    %url,
                    "fetching the auth-service's keys in plaintext because NINAIVALAIGAL_ALLOW_PLAINTEXT is set"
                );
            }
            Ok(None)
        }
        _ => anyhow::bail!("NINAIVALAIGAL_AUTH_URL {url} must start with https:// or http://"),
    }
}

/// Longest the TLS handshake with the auth-service may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn source(args: &[&str]) -> anyhow::Result<JwksSource> {
        let mut all = vec!["memory-service", "--database-url=postgres://u:p@h/db"];
        all.extend_from_slice(args);
        let settings = Settings::try_parse_from(all).unwrap();
        let verifier = Arc::new(TokenVerifier::ed25519("i", "a", Duration::ZERO));
        JwksSource::new(&settings, verifier)
    }

    #[tokio::test]
    async fn plaintext_keys_only_from_this_machine_unless_allowed() {
        source(&["--auth-url=http://127.0.0.1:1"]).unwrap();
        source(&["--auth-url=http://localhost:1"]).unwrap();
        let error = source(&["--auth-url=http://auth-service:13371"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("NINAIVALAIGAL_AUTH_URL http://auth-service:13371")
                && error.contains("NINAIVALAIGAL_ALLOW_PLAINTEXT"),
            "{error}"
        );
        source(&["--auth-url=http://auth-service:13371", "--allow-plaintext"]).unwrap();
    }

    #[tokio::test]
    async fn tls_settings_are_checked_at_start_up() {
        let error = source(&[
            "--auth-url=https://auth-service:13371",
            "--auth-ca=/nonexistent/ca.crt",
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(error.starts_with("NINAIVALAIGAL_AUTH_CA:"), "{error}");
        let error = source(&["--auth-url=http://127.0.0.1:1", "--auth-ca=/x.crt"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("need an https://"), "{error}");
        let error = source(&[
            "--auth-url=https://auth-service:13371",
            "--auth-client-cert=/x.crt",
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("go together"), "{error}");
    }
}
