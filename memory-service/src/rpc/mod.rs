//! gRPC handlers of the memory-service. Each handler parses its request into
//! typed values, then does all of its database work in one [`db::with_user`]
//! transaction in the request's [`RequestScope`]: as the caller that the
//! auth layer verified, within the request's deadline.
//!
//! [`db::with_user`]: crate::db::with_user
//! [`RequestScope`]: crate::scope::RequestScope

mod contexts;
mod convert;
mod memories;
mod transfer;

use std::sync::Arc;

use ninaivalaigal::{
    db::PgPool,
    memory_v1::{self as pb, memory_service_server::MemoryService},
};
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status};

pub use memories::NO_RECORDING;

use crate::{db::Deployment, error::Error, exports::Exports, quota::Quota, writes::BatchLimits};

/// What the handlers share.
pub struct MemoryState {
    /// Database connections, as the memory-service's role.
    pub pool: PgPool,
    /// Largest memory accepted, in bytes of JSON.
    pub max_memory_bytes: usize,
    /// Most bytes of memories in one Recall response.
    pub max_response_bytes: usize,
    /// What one user may keep.
    pub quota: Quota,
    /// What one RememberMany or ImportMemories call may hold.
    pub batch: BatchLimits,
    /// Exports running now, and their limits.
    pub exports: Exports,
    /// What kind of PostgreSQL this is, asked of the database by the
    /// first request that needs to know and finds it reachable.
    pub deployment: OnceCell<Deployment>,
}

impl MemoryState {
    /// What kind of PostgreSQL this is ([`Deployment::detect`]).
    pub async fn deployment(&self) -> Result<Deployment, Error> {
        self.deployment
            .get_or_try_init(|| Deployment::detect(&self.pool))
            .await
            .copied()
    }
}

/// Handlers of `MemoryService`.
#[derive(Clone)]
pub struct MemoryRpc {
    state: Arc<MemoryState>,
}

impl MemoryRpc {
    /// Handlers over `state`.
    pub fn new(state: Arc<MemoryState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl MemoryService for MemoryRpc {
    async fn create_context(
        &self,
        request: Request<pb::CreateContextRequest>,
    ) -> Result<Response<pb::CreateContextResponse>, Status> {
        Ok(Response::new(contexts::create(&self.state, request).await?))
    }

    async fn list_contexts(
        &self,
        request: Request<pb::ListContextsRequest>,
    ) -> Result<Response<pb::ListContextsResponse>, Status> {
        Ok(Response::new(contexts::list(&self.state, request).await?))
    }

    async fn get_context(
        &self,
        request: Request<pb::GetContextRequest>,
    ) -> Result<Response<pb::GetContextResponse>, Status> {
        Ok(Response::new(contexts::get(&self.state, request).await?))
    }

    async fn delete_context(
        &self,
        request: Request<pb::DeleteContextRequest>,
    ) -> Result<Response<pb::DeleteContextResponse>, Status> {
        Ok(Response::new(contexts::delete(&self.state, request).await?))
    }

    async fn start_recording(
        &self,
        request: Request<pb::StartRecordingRequest>,
    ) -> Result<Response<pb::StartRecordingResponse>, Status> {
        Ok(Response::new(
            contexts::start_recording(&self.state, request).await?,
        ))
    }

    async fn stop_recording(
        &self,
        request: Request<pb::StopRecordingRequest>,
    ) -> Result<Response<pb::StopRecordingResponse>, Status> {
        Ok(Response::new(
            contexts::stop_recording(&self.state, request).await?,
        ))
    }

    async fn remember(
        &self,
        request: Request<pb::RememberRequest>,
    ) -> Result<Response<pb::RememberResponse>, Status> {
        Ok(Response::new(
            memories::remember(&self.state, request).await?,
        ))
    }

    async fn remember_many(
        &self,
        request: Request<pb::RememberManyRequest>,
    ) -> Result<Response<pb::RememberManyResponse>, Status> {
        Ok(Response::new(
            memories::remember_many(&self.state, request).await?,
        ))
    }

    type ExportMemoriesStream = transfer::ExportStream;

    async fn export_memories(
        &self,
        request: Request<pb::ExportMemoriesRequest>,
    ) -> Result<Response<Self::ExportMemoriesStream>, Status> {
        Ok(Response::new(transfer::export(&self.state, request).await?))
    }

    async fn import_memories(
        &self,
        request: Request<pb::ImportMemoriesRequest>,
    ) -> Result<Response<pb::ImportMemoriesResponse>, Status> {
        Ok(Response::new(transfer::import(&self.state, request).await?))
    }

    async fn recall(
        &self,
        request: Request<pb::RecallRequest>,
    ) -> Result<Response<pb::RecallResponse>, Status> {
        Ok(Response::new(memories::recall(&self.state, request).await?))
    }

    async fn forget(
        &self,
        request: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetResponse>, Status> {
        Ok(Response::new(memories::forget(&self.state, request).await?))
    }
}
