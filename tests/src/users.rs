//! Accounts and calls with tokens, for tests of anything behind a login.

use ninaivalaigal::auth_v1::{
    RegisterRequest, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient,
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::TestPair;

/// The password `register_user` gives every account.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// The email of the account the harness makes an administrator
/// (`--admin-emails`); register it with [`TestPair::register_admin`].
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

    /// Registers [`ADMIN_EMAIL`], which the harness configures as an admin.
    pub async fn register_admin(&self) -> TestUser {
        self.register_user(ADMIN_EMAIL).await
    }
}
