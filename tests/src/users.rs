//! Accounts and calls with tokens, for tests of anything behind a login.

use clap::Parser;
use ninaivalaigal::auth_v1::{
    RegisterRequest, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::{TestPair, cluster::Role};

/// The password `register_user` gives every account.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// The email of the account [`TestPair::register_admin`] registers and
/// makes an administrator.
pub const ADMIN_EMAIL: &str = "admin@ninaivalaigal.test";

/// A registered account and its first session.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// Account id.
    pub id: i64,
    /// Normalized email.
    pub email: String,
    /// Its password ([`TEST_PASSWORD`]).
    pub password: String,
    /// Access token of the first session.
    pub access_token: String,
    /// Refresh token of the first session.
    pub refresh_token: String,
    /// Id of the first session (the token's `sid`).
    pub session_id: String,
}

/// `msg` with an `authorization: Bearer <token>` header.
pub fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut request = Request::new(msg);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("token is ASCII"),
    );
    request
}

impl TestPair {
    /// A client of the auth-service's `AuthService`.
    pub async fn auth_client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.auth_channel().await)
    }

    /// A client of the auth-service's `AdminService`.
    pub async fn admin_client(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.auth_channel().await)
    }

    /// Registers `email` with [`TEST_PASSWORD`] over gRPC.
    pub async fn register_user(&self, email: &str) -> TestUser {
        let response = self
            .auth_client()
            .await
            .register(RegisterRequest {
                email: email.to_owned(),
                password: TEST_PASSWORD.to_owned(),
                name: format!("Test user {email}"),
            })
            .await
            .unwrap_or_else(|status| panic!("register {email}: {status:?}"))
            .into_inner();
        let user = response.user.expect("Register returns the user");
        let session = response.session.expect("Register returns a session");
        TestUser {
            id: user.id,
            email: user.email,
            password: TEST_PASSWORD.to_owned(),
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            session_id: session.session_id,
        }
    }

    /// Registers [`ADMIN_EMAIL`] and makes it an administrator the way an
    /// operator would ([`TestPair::operator`]`(["admin", "grant", ...])`).
    pub async fn register_admin(&self) -> TestUser {
        let admin = self.register_user(ADMIN_EMAIL).await;
        self.operator(&["admin", "grant", ADMIN_EMAIL])
            .await
            .unwrap_or_else(|error| panic!("auth-service admin grant: {error:#}"));
        admin
    }

    /// Runs an operator subcommand of the auth-service binary (`admin grant
    /// EMAIL`, ...) against this pair's database, as the auth role, exactly
    /// as `auth-service <args>` would; returns the line it prints.
    pub async fn operator(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec![
            "auth-service".to_owned(),
            format!("--database-url={}", self.db.url(Role::Auth)),
        ];
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        let cli = auth_service::config::Cli::try_parse_from(argv)?;
        let Some(auth_service::config::Command::Admin(command)) = cli.command else {
            anyhow::bail!("not an operator subcommand: {args:?}");
        };
        auth_service::admins::command::run(&command, &cli.settings.database).await
    }
}
