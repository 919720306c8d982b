//! gRPC handlers of the auth-service.

use ninaivalaigal::auth_v1::{
    self as pb, admin_service_server::AdminService, auth_service_server::AuthService,
};
use tonic::{Request, Response, Status};

/// Handlers of `AuthService`.
pub struct AuthRpc;

/// Handlers of `AdminService`.
pub struct AdminRpc;

#[tonic::async_trait]
impl AuthService for AuthRpc {
    async fn register(
        &self,
        _: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        Err(Status::unimplemented("Register is not implemented yet"))
    }
    async fn login(
        &self,
        _: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        Err(Status::unimplemented("Login is not implemented yet"))
    }
    async fn refresh(
        &self,
        _: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        Err(Status::unimplemented("Refresh is not implemented yet"))
    }
    async fn logout(
        &self,
        _: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        Err(Status::unimplemented("Logout is not implemented yet"))
    }
    async fn who_am_i(
        &self,
        _: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        Err(Status::unimplemented("WhoAmI is not implemented yet"))
    }
    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Err(Status::unimplemented("GetJwks is not implemented yet"))
    }
}

#[tonic::async_trait]
impl AdminService for AdminRpc {
    async fn list_users(
        &self,
        _: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        Err(Status::unimplemented("ListUsers is not implemented yet"))
    }
    async fn disable_user(
        &self,
        _: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        Err(Status::unimplemented("DisableUser is not implemented yet"))
    }
    async fn delete_user(
        &self,
        _: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        Err(Status::unimplemented("DeleteUser is not implemented yet"))
    }
}
