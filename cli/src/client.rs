//! gRPC channels to the two services (TLS for `https://`), the bearer token
//! on each request, and [`App`], which ties them to the session so every
//! authenticated call refreshes and retries the same way.

use std::future::Future;

use ninaivalaigal::{
    auth_v1::auth_service_client::AuthServiceClient,
    memory_v1::memory_service_client::MemoryServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::{
    config::Config,
    exit::{Failure, Kind, Server},
    session::{Session, Token},
};

/// A channel to `url`, balanced request by request over every address the
/// URL's host name resolves to; it connects on first use, so an unreachable
/// server shows up as UNAVAILABLE on the call rather than here.
pub fn channel(url: &str, config: &Config) -> Result<Channel, Failure> {
    let invalid = |error: &dyn std::fmt::Display| {
        Failure::new(
            Kind::Usage,
            format!("cannot use the server URL {url}: {error}"),
        )
    };
    let https = url.starts_with("https://");
    // Every address the server's name resolves to (a Kubernetes headless
    // Service: one per ready replica) gets its share of the requests.
    ninaivalaigal::balance::channel(url, |endpoint: Endpoint, host| {
        let endpoint = endpoint
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
            .timeout(config.timeout);
        if !https {
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new().with_native_roots().domain_name(host);
        if let Some(pem) = &config.ca_cert {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint.tls_config(tls)
    })
    .map_err(|error| invalid(&error))
}

/// An access token, ready to go into the `authorization` header.
#[derive(Clone, Debug)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    /// Refuses tokens that cannot be sent as a header value.
    pub fn new(token: &str) -> Result<Self, Failure> {
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Self)
            .map_err(|_| {
                Failure::new(
                    Kind::Auth,
                    "the access token contains characters a token cannot have",
                )
                .hint("run `eM login`, or check NINAIVALAIGAL_USER_TOKEN")
            })
    }

    /// `message` with `authorization: Bearer <token>`.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        request
    }
}

/// The clients and the session a command runs with.
pub struct App {
    /// The resolved settings.
    pub config: Config,
    /// Token handling, shared by the CLI and the MCP server.
    pub session: Session,
    memory: MemoryServiceClient<Channel>,
    auth: AuthServiceClient<Channel>,
}

impl App {
    /// Sets up (lazy) channels to both services.
    pub fn new(config: Config) -> Result<Self, Failure> {
        let memory = MemoryServiceClient::new(channel(&config.server_url, &config)?);
        let auth = AuthServiceClient::new(channel(&config.auth_url, &config)?);
        let session = Session::new(config.clone(), auth.clone());
        Ok(Self {
            config,
            session,
            memory,
            auth,
        })
    }

    /// The memory-service, for messages.
    pub fn memory_server(&self) -> Server {
        Server::Memory(self.config.server_url.clone())
    }

    /// The auth-service, for messages.
    pub fn auth_server(&self) -> Server {
        Server::Auth(self.config.auth_url.clone())
    }

    /// A client of the auth-service, for calls that need no token.
    pub fn auth_client(&self) -> AuthServiceClient<Channel> {
        self.auth.clone()
    }

    /// Calls the memory-service with the current access token; refreshes and
    /// retries once if the token is refused.
    pub async fn memory<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(MemoryServiceClient<Channel>, Bearer) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let server = self.memory_server();
        self.authorized(&server, |bearer| call(self.memory.clone(), bearer))
            .await
    }

    /// Calls the auth-service with the current access token, like [`App::memory`].
    pub async fn auth<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(AuthServiceClient<Channel>, Bearer) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let server = self.auth_server();
        self.authorized(&server, |bearer| call(self.auth.clone(), bearer))
            .await
    }

    async fn authorized<T, F, Fut>(&self, server: &Server, call: F) -> Result<T, Failure>
    where
        F: Fn(Bearer) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let token = self.session.token(server).await?;
        match call(Bearer::new(token.value())?).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) if status.code() == tonic::Code::Unauthenticated => match token {
                Token::Env(_) => Err(env_token_refused(&status, server)),
                Token::Saved(_) => {
                    // Expired early, clock skew, or rotated keys: one fresh
                    // token, one retry.
                    let fresh = self.session.refreshed(&token, server).await?;
                    call(Bearer::new(fresh.value())?)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|status| refused_after_refresh(&status, server))
                }
            },
            Err(status) => Err(Failure::from_status(&status, server)),
        }
    }
}

fn env_token_refused(status: &Status, server: &Server) -> Failure {
    let name = match server {
        Server::Memory(_) => "memory-service",
        Server::Auth(_) => "auth-service",
    };
    Failure::new(
        Kind::Auth,
        format!(
            "the {name} refused the token in NINAIVALAIGAL_USER_TOKEN: {}",
            status.message()
        ),
    )
    .hint("set NINAIVALAIGAL_USER_TOKEN to a fresh access token, or unset it and run `eM login`")
}

fn refused_after_refresh(status: &Status, server: &Server) -> Failure {
    if status.code() == tonic::Code::Unauthenticated {
        Failure::session_expired()
    } else {
        Failure::from_status(status, server)
    }
}
