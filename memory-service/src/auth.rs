//! Authentication of every MemoryService RPC: a tower service around the
//! generated server that verifies `authorization: Bearer <access token>`
//! before the request reaches a handler (and so before any database work),
//! and hands the handler the verified [`AuthenticatedUser`] in the request
//! extensions. Health and reflection are separate services and never pass
//! through it. It is async because an unknown signing key makes it fetch the
//! auth-service's keys before deciding.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::HeaderMap;
use ninaivalaigal::{
    bearer::{self, BearerError},
    metrics::Metrics,
    token::{AuthenticatedUser, TokenError, TokenVerifier},
};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::{error::Error, jwks::JwksSource, revocation::RevocationList};

/// Decides who the caller is, or why not.
pub struct Authenticator {
    verifier: Arc<TokenVerifier>,
    /// Where EdDSA keys come from; `None` with a shared HS256 secret.
    jwks: Option<Arc<JwksSource>>,
    revocations: Arc<RevocationList>,
    metrics: Metrics,
}

/// Requests refused by the authenticator, by reason.
const REJECTIONS: &str = "ninaivalaigal_token_rejections_total";

impl Authenticator {
    /// An authenticator over a verifier, its key source and the revocations,
    /// counting its refusals in `metrics`.
    pub fn new(
        verifier: Arc<TokenVerifier>,
        jwks: Option<Arc<JwksSource>>,
        revocations: Arc<RevocationList>,
        metrics: Metrics,
    ) -> Self {
        metrics.describe(
            REJECTIONS,
            "Requests refused before any handler ran, by reason: no usable bearer token, a token that fails verification, a revoked session, or no keys or revocation list to check it with yet.",
        );
        Self {
            verifier,
            jwks,
            revocations,
            metrics,
        }
    }

    /// The verified caller of a request with these headers; a refusal is
    /// counted by its reason.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthenticatedUser, Error> {
        self.verify(headers).await.map_err(|(reason, error)| {
            self.metrics
                .counter(REJECTIONS, &[("reason", reason)])
                .increment(1);
            error
        })
    }

    async fn verify(
        &self,
        headers: &HeaderMap,
    ) -> Result<AuthenticatedUser, (&'static str, Error)> {
        let token =
            bearer::from_headers(headers).map_err(|error| (bearer_reason(error), error.into()))?;
        if let Some(jwks) = &self.jwks
            && !jwks.has_keys()
        {
            jwks.refresh_soon().await;
            if !jwks.has_keys() {
                return Err((
                    "no_keys",
                    Error::Unavailable(format!(
                        "cannot verify access tokens yet: the auth-service at {} is unreachable or publishes no keys; try again shortly",
                        jwks.url()
                    )),
                ));
            }
        }
        let mut verified = self.verifier.verify(token);
        if verified == Err(TokenError::UnknownKey)
            && let Some(jwks) = &self.jwks
            && jwks.refresh_soon().await
        {
            // The auth-service may have rotated its key since our last fetch.
            verified = self.verifier.verify(token);
        }
        let claims = verified.map_err(|error| {
            (
                token_reason(&error),
                Error::Unauthenticated(error.to_string()),
            )
        })?;
        if !self.revocations.has_loaded() {
            return Err(("revocations_not_loaded", Error::Unavailable(
                "cannot check access tokens against revocations yet: the revoked-session list has not been read from the database; try again shortly".into(),
            )));
        }
        if self.revocations.is_revoked(&claims.sid) {
            let revoked = TokenError::Revoked;
            return Err((
                token_reason(&revoked),
                Error::Unauthenticated(revoked.to_string()),
            ));
        }
        Ok(claims.into())
    }
}

/// The metric label of a bearer header that could not be read.
fn bearer_reason(error: BearerError) -> &'static str {
    match error {
        BearerError::Missing => "missing_token",
        BearerError::Repeated => "repeated_header",
        BearerError::TooLong => "header_too_long",
        BearerError::Malformed => "malformed_header",
    }
}

/// The metric label of a token that failed verification.
fn token_reason(error: &TokenError) -> &'static str {
    match error {
        TokenError::Malformed => "malformed_token",
        TokenError::WrongAlgorithm => "wrong_algorithm",
        TokenError::UnknownKey => "unknown_key",
        TokenError::BadSignature => "bad_signature",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::Invalid(_) => "invalid_claims",
        TokenError::Revoked => "revoked",
    }
}

/// Wraps a service so that only authenticated requests reach it.
#[derive(Clone)]
pub struct RequireUserLayer {
    authenticator: Arc<Authenticator>,
}

impl RequireUserLayer {
    /// A layer that authenticates with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for RequireUserLayer {
    type Service = RequireUser<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireUser {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// A gRPC service that answers UNAUTHENTICATED (or UNAVAILABLE while no keys
/// are known) unless the request carries a valid, unrevoked access token.
#[derive(Clone)]
pub struct RequireUser<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> Service<http::Request<Body>> for RequireUser<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone is not ready; keep the ready one for this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            match authenticator.authenticate(request.headers()).await {
                Ok(user) => {
                    request.extensions_mut().insert(user);
                    inner.call(request).await
                }
                Err(error) => Ok(Status::from(error).into_http()),
            }
        })
    }
}

impl<S: NamedService> NamedService for RequireUser<S> {
    const NAME: &'static str = S::NAME;
}
