//! gRPC handlers of the memory-service.

use ninaivalaigal::memory_v1::{self as pb, memory_service_server::MemoryService};
use tonic::{Request, Response, Status};

/// Handlers of `MemoryService`.
pub struct MemoryRpc;

#[tonic::async_trait]
impl MemoryService for MemoryRpc {
    async fn create_context(
        &self,
        _: Request<pb::CreateContextRequest>,
    ) -> Result<Response<pb::CreateContextResponse>, Status> {
        Err(Status::unimplemented(
            "CreateContext is not implemented yet",
        ))
    }
    async fn list_contexts(
        &self,
        _: Request<pb::ListContextsRequest>,
    ) -> Result<Response<pb::ListContextsResponse>, Status> {
        Err(Status::unimplemented("ListContexts is not implemented yet"))
    }
    async fn get_context(
        &self,
        _: Request<pb::GetContextRequest>,
    ) -> Result<Response<pb::GetContextResponse>, Status> {
        Err(Status::unimplemented("GetContext is not implemented yet"))
    }
    async fn delete_context(
        &self,
        _: Request<pb::DeleteContextRequest>,
    ) -> Result<Response<pb::DeleteContextResponse>, Status> {
        Err(Status::unimplemented(
            "DeleteContext is not implemented yet",
        ))
    }
    async fn start_recording(
        &self,
        _: Request<pb::StartRecordingRequest>,
    ) -> Result<Response<pb::StartRecordingResponse>, Status> {
        Err(Status::unimplemented(
            "StartRecording is not implemented yet",
        ))
    }
    async fn stop_recording(
        &self,
        _: Request<pb::StopRecordingRequest>,
    ) -> Result<Response<pb::StopRecordingResponse>, Status> {
        Err(Status::unimplemented(
            "StopRecording is not implemented yet",
        ))
    }
    async fn remember(
        &self,
        _: Request<pb::RememberRequest>,
    ) -> Result<Response<pb::RememberResponse>, Status> {
        Err(Status::unimplemented("Remember is not implemented yet"))
    }
    async fn recall(
        &self,
        _: Request<pb::RecallRequest>,
    ) -> Result<Response<pb::RecallResponse>, Status> {
        Err(Status::unimplemented("Recall is not implemented yet"))
    }
    async fn forget(
        &self,
        _: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetResponse>, Status> {
        Err(Status::unimplemented("Forget is not implemented yet"))
    }
}
