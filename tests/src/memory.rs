//! Calls to the memory-service as a given user, and JSON <-> `Struct`
//! conversion for building and checking memories in tests.

use ninaivalaigal::memory_v1::{self as pb, memory_service_client::MemoryServiceClient};
use prost_types::{ListValue, Struct, Value, value::Kind};
use tonic::{Status, transport::Channel};

use crate::{TestPair, TestUser, bearer};

/// A memory-service client that sends one user's access token.
#[derive(Clone)]
pub struct MemoryAs {
    client: MemoryServiceClient<Channel>,
    token: String,
}

impl TestPair {
    /// A client of the memory-service.
    pub async fn memory_client(&self) -> MemoryServiceClient<Channel> {
        MemoryServiceClient::new(self.memory_channel().await)
    }

    /// A client of the memory-service that calls as `user`.
    pub async fn memory_as(&self, user: &TestUser) -> MemoryAs {
        MemoryAs::new(self.memory_client().await, &user.access_token)
    }
}

impl MemoryAs {
    /// A client sending `token`.
    pub fn new(client: MemoryServiceClient<Channel>, token: &str) -> Self {
        Self {
            client,
            token: token.to_owned(),
        }
    }

    /// CreateContext with a name and description.
    pub async fn create_context(
        &self,
        name: &str,
        description: &str,
    ) -> Result<pb::Context, Status> {
        let request = pb::CreateContextRequest {
            name: name.into(),
            description: description.into(),
            visibility: 0,
        };
        self.create_context_with(request).await
    }

    /// CreateContext with a full request.
    pub async fn create_context_with(
        &self,
        request: pb::CreateContextRequest,
    ) -> Result<pb::Context, Status> {
        let response = self
            .client
            .clone()
            .create_context(bearer(request, &self.token))
            .await?;
        Ok(response
            .into_inner()
            .context
            .expect("CreateContext returns the context"))
    }

    /// ListContexts, one page.
    pub async fn list_contexts(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListContextsResponse, Status> {
        let request = pb::ListContextsRequest {
            page_size,
            page_token: page_token.into(),
        };
        Ok(self
            .client
            .clone()
            .list_contexts(bearer(request, &self.token))
            .await?
            .into_inner())
    }

    /// Names of every context, through all pages.
    pub async fn context_names(&self) -> Result<Vec<String>, Status> {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.list_contexts(0, &token).await?;
            names.extend(page.contexts.into_iter().map(|c| c.name));
            if page.next_page_token.is_empty() {
                return Ok(names);
            }
            token = page.next_page_token;
        }
    }

    /// GetContext.
    pub async fn get_context(&self, name: &str) -> Result<pb::Context, Status> {
        let request = pb::GetContextRequest { name: name.into() };
        let response = self
            .client
            .clone()
            .get_context(bearer(request, &self.token))
            .await?;
        Ok(response
            .into_inner()
            .context
            .expect("GetContext returns the context"))
    }

    /// DeleteContext; returns the number of memories deleted.
    pub async fn delete_context(&self, name: &str) -> Result<i64, Status> {
        let request = pb::DeleteContextRequest { name: name.into() };
        let response = self
            .client
            .clone()
            .delete_context(bearer(request, &self.token))
            .await?;
        Ok(response.into_inner().deleted_memories)
    }

    /// StartRecording.
    pub async fn start_recording(&self, name: &str) -> Result<pb::StartRecordingResponse, Status> {
        let request = pb::StartRecordingRequest { name: name.into() };
        Ok(self
            .client
            .clone()
            .start_recording(bearer(request, &self.token))
            .await?
            .into_inner())
    }

    /// StopRecording.
    pub async fn stop_recording(&self, name: &str) -> Result<pb::Context, Status> {
        let request = pb::StopRecordingRequest { name: name.into() };
        let response = self
            .client
            .clone()
            .stop_recording(bearer(request, &self.token))
            .await?;
        Ok(response
            .into_inner()
            .context
            .expect("StopRecording returns the context"))
    }

    /// Remember `data` (a JSON object) of `memory_type` into `context`
    /// (empty: the recording context).
    pub async fn remember(
        &self,
        context: &str,
        memory_type: &str,
        data: serde_json::Value,
    ) -> Result<pb::Memory, Status> {
        self.remember_struct(context, memory_type, Some(to_struct(data)))
            .await
    }

    /// Remember with a `Struct` as it is (for data JSON cannot express).
    pub async fn remember_struct(
        &self,
        context: &str,
        memory_type: &str,
        data: Option<Struct>,
    ) -> Result<pb::Memory, Status> {
        let request = pb::RememberRequest {
            context: context.into(),
            r#type: memory_type.into(),
            data,
            request_id: String::new(),
        };
        let response = self
            .client
            .clone()
            .remember(bearer(request, &self.token))
            .await?;
        Ok(response
            .into_inner()
            .memory
            .expect("Remember returns the memory"))
    }

    /// Recall, one page.
    pub async fn recall(&self, request: pb::RecallRequest) -> Result<pb::RecallResponse, Status> {
        Ok(self
            .client
            .clone()
            .recall(bearer(request, &self.token))
            .await?
            .into_inner())
    }

    /// Every memory `request` selects, through all pages.
    pub async fn recall_all(
        &self,
        mut request: pb::RecallRequest,
    ) -> Result<Vec<pb::Memory>, Status> {
        let mut memories = Vec::new();
        loop {
            let page = self.recall(request.clone()).await?;
            memories.extend(page.memories);
            if page.next_page_token.is_empty() {
                return Ok(memories);
            }
            request.page_token = page.next_page_token;
        }
    }

    /// Recall of one context, every page.
    pub async fn recall_context(&self, context: &str) -> Result<Vec<pb::Memory>, Status> {
        self.recall_all(pb::RecallRequest {
            context: context.into(),
            ..Default::default()
        })
        .await
    }

    /// Forget.
    pub async fn forget(&self, id: i64) -> Result<(), Status> {
        let request = pb::ForgetRequest { id };
        self.client
            .clone()
            .forget(bearer(request, &self.token))
            .await?;
        Ok(())
    }
}

/// A Remember request for a note in `context` (empty: the recording
/// context), with `request_id` (empty: none).
pub fn remember_request(
    context: &str,
    data: serde_json::Value,
    request_id: &str,
) -> pb::RememberRequest {
    pb::RememberRequest {
        context: context.into(),
        r#type: "note".into(),
        data: Some(to_struct(data)),
        request_id: request_id.into(),
    }
}

/// Sends `request` as `user`; the whole answer, `already_stored` included.
pub async fn remember(
    pair: &TestPair,
    user: &TestUser,
    request: pb::RememberRequest,
) -> Result<pb::RememberResponse, Status> {
    Ok(pair
        .memory_client()
        .await
        .remember(bearer(request, &user.access_token))
        .await?
        .into_inner())
}

/// A JSON object as a `Struct`. Panics on anything but an object.
pub fn to_struct(value: serde_json::Value) -> Struct {
    match to_value(value).kind {
        Some(Kind::StructValue(s)) => s,
        other => panic!("not a JSON object: {other:?}"),
    }
}

/// A JSON value as a protobuf `Value`.
pub fn to_value(value: serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().expect("number")),
        J::String(s) => Kind::StringValue(s),
        J::Array(values) => Kind::ListValue(ListValue {
            values: values.into_iter().map(to_value).collect(),
        }),
        J::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

/// A number `Value`.
pub fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// A `Struct` of the given fields.
pub fn fields(entries: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}
