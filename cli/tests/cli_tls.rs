//! `https://` server URLs use TLS, and the server's certificate is checked:
//! a TLS front (self-signed certificate made per test) forwards to the real
//! auth-service; `eM` gets through it only when told to trust that CA.

// Test code: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod support;

use ninaivalaigal::auth_v1::{
    self,
    auth_service_client::AuthServiceClient,
    auth_service_server::{AuthService, AuthServiceServer},
};
use ninaivalaigal_tests::spawn_pair;
use support::{Em, PASSWORD, code};
use tonic::{
    Request, Response, Status,
    transport::{Channel, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};

/// Passes every call, metadata included, to the real auth-service.
struct Forward(AuthServiceClient<Channel>);

fn pass<T>(request: Request<T>) -> Request<T> {
    let (metadata, _, message) = request.into_parts();
    Request::from_parts(metadata, Default::default(), message)
}

#[tonic::async_trait]
impl AuthService for Forward {
    async fn register(
        &self,
        request: Request<auth_v1::RegisterRequest>,
    ) -> Result<Response<auth_v1::RegisterResponse>, Status> {
        self.0.clone().register(pass(request)).await
    }
    async fn login(
        &self,
        request: Request<auth_v1::LoginRequest>,
    ) -> Result<Response<auth_v1::LoginResponse>, Status> {
        self.0.clone().login(pass(request)).await
    }
    async fn refresh(
        &self,
        request: Request<auth_v1::RefreshRequest>,
    ) -> Result<Response<auth_v1::RefreshResponse>, Status> {
        self.0.clone().refresh(pass(request)).await
    }
    async fn logout(
        &self,
        request: Request<auth_v1::LogoutRequest>,
    ) -> Result<Response<auth_v1::LogoutResponse>, Status> {
        self.0.clone().logout(pass(request)).await
    }
    async fn who_am_i(
        &self,
        request: Request<auth_v1::WhoAmIRequest>,
    ) -> Result<Response<auth_v1::WhoAmIResponse>, Status> {
        self.0.clone().who_am_i(pass(request)).await
    }
    async fn get_jwks(
        &self,
        request: Request<auth_v1::GetJwksRequest>,
    ) -> Result<Response<auth_v1::GetJwksResponse>, Status> {
        self.0.clone().get_jwks(pass(request)).await
    }
    async fn delete_account(
        &self,
        request: Request<auth_v1::DeleteAccountRequest>,
    ) -> Result<Response<auth_v1::DeleteAccountResponse>, Status> {
        self.0.clone().delete_account(pass(request)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_use_tls_and_check_the_certificate() {
    let pair = spawn_pair().await;
    pair.register_user("tls@example.com").await;

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert_pem = certified.cert.pem();
    let identity = Identity::from_pem(&cert_pem, certified.signing_key.serialize_pem());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let front = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))
        .expect("TLS settings")
        .add_service(AuthServiceServer::new(Forward(pair.auth_client().await)))
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(front);

    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_path, &cert_pem).unwrap();
    let auth_url = format!("https://localhost:{port}");

    // Not trusted: the handshake fails and nothing is sent.
    let untrusted = Em::with_urls(pair.memory_url(), auth_url.clone());
    let refused = untrusted
        .login("tls@example.com", ninaivalaigal_tests::TEST_PASSWORD)
        .await;
    refused.expect_code(code::UNAVAILABLE);
    assert!(
        refused.stderr.contains("NINAIVALAIGAL_CA_CERT"),
        "{}",
        refused.stderr
    );
    assert!(!untrusted.credentials_path().exists());

    // Trusted through --ca-cert: login and an authenticated call go through TLS.
    let em = Em::with_urls(pair.memory_url(), auth_url.clone());
    let ca = ca_path.to_str().unwrap();
    em.run_with_input(
        &["login", "--email", "tls@example.com", "--ca-cert", ca],
        &format!("{}\n", ninaivalaigal_tests::TEST_PASSWORD),
    )
    .await
    .ok();
    assert_eq!(em.credentials()["auth_url"], auth_url);
    let whoami = em.run(&["whoami", "--json", "--ca-cert", ca]).await;
    whoami.ok();
    assert_eq!(whoami.json()["user"]["email"], "tls@example.com");

    // Plain HTTP to the TLS port does not work either: the scheme decides.
    let plain = Em::with_urls(pair.memory_url(), format!("http://localhost:{port}"));
    let plain = plain.login("tls@example.com", PASSWORD).await;
    plain.expect_code(code::UNAVAILABLE);
}
