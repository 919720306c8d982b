//! `eM mcp`: the memory operations as Model Context Protocol tools over
//! stdio, for AI assistants. Authentication is the CLI's (the
//! `NINAIVALAIGAL_USER_TOKEN` variable or the saved login, refreshed as
//! needed, re-read on every call so a new `eM login` is picked up). A failed
//! call is a tool error carrying the same message and hint as the CLI
//! prints, never a crash of the server. Nothing but protocol goes to stdout.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rmcp::{
    ServerHandler, ServiceExt,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::{
    client::App,
    commands::{contexts, memories},
    exit::{Failure, Kind},
    output::to_json,
};

const INSTRUCTIONS: &str = "\
Ninaivalaigal (eM) keeps the user's memories: JSON records grouped in named \
contexts, usually one per project. Use `recall` (with a `query`) to look up \
what was recorded before, and `remember` to store notes, decisions and \
commands worth keeping. `remember` writes to the context that is recording \
(see `start_recording`) unless a `context` is given.";

/// Default number of memories `recall` returns.
const DEFAULT_RECALL_LIMIT: u32 = 20;

/// Arguments of `remember`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RememberParams {
    /// Kind of record, e.g. "note", "decision", "command" (1 to 64 characters).
    #[serde(rename = "type")]
    pub kind: String,
    /// The record itself: any JSON object, e.g. {"message": "..."}. It comes
    /// back from `recall` exactly as given.
    pub data: Map<String, Json>,
    /// Context to store into; by default the context that is recording.
    #[serde(default)]
    pub context: Option<String>,
    /// Optional id of this write, a UUID you choose: when you call
    /// `remember` again for the same memory (say, after a timeout), send the
    /// same id and it is stored once. Without it, a new id is used (and
    /// reused on eM's own retries).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Arguments of `recall`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RecallParams {
    /// Context to read; by default the context that is recording.
    #[serde(default)]
    pub context: Option<String>,
    /// Search every context instead of one (then leave `context` out).
    #[serde(default)]
    pub all_contexts: bool,
    /// Full-text query: words, "quoted phrases", -excluded words, or.
    #[serde(default)]
    pub query: Option<String>,
    /// Only memories of this type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Only memories created at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only memories created before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Most memories to return (default 20, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// Arguments of `create_context`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateContextParams {
    /// Name: 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit.
    pub name: String,
    /// What the context is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A context, by name.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ContextNameParams {
    /// Name of the context.
    pub context: String,
}

/// Arguments of `stop_recording`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StopRecordingParams {
    /// Name of the context; by default the one recording now.
    #[serde(default)]
    pub context: Option<String>,
}

/// Arguments of `forget`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ForgetParams {
    /// Id of the memory, as `recall` returns it.
    pub id: i64,
}

/// The MCP server.
#[derive(Clone)]
pub struct MemoryTools {
    app: Arc<App>,
    tool_router: ToolRouter<Self>,
}

/// A tool's result: the view as JSON text, or the failure with its hint.
type ToolResult = Result<String, String>;

fn reply<T: Serialize>(result: Result<T, Failure>) -> ToolResult {
    match result {
        Ok(view) => Ok(to_json(&view)),
        Err(failure) => Err(failure.to_string()),
    }
}

#[tool_router]
impl MemoryTools {
    /// Tools backed by `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Store one memory (a JSON object with a type) in a context, by default the one that is recording. Returns the stored memory with its id."
    )]
    async fn remember(&self, Parameters(params): Parameters<RememberParams>) -> ToolResult {
        let request_id = match params
            .request_id
            .as_deref()
            .map(Uuid::try_parse)
            .transpose()
        {
            Ok(request_id) => request_id,
            Err(_) => {
                return Err(
                    "request_id must be a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8"
                        .to_owned(),
                );
            }
        };
        reply(
            memories::remember(
                &self.app,
                params.context.as_deref(),
                &params.kind,
                params.data,
                request_id,
            )
            .await,
        )
    }

    #[tool(
        description = "Find memories, newest first: full-text query, type and time filters, one context (by default the recording one) or all of them.",
        annotations(read_only_hint = true)
    )]
    async fn recall(&self, Parameters(params): Parameters<RecallParams>) -> ToolResult {
        let limit = params.limit.unwrap_or(DEFAULT_RECALL_LIMIT);
        if !(1..=1000).contains(&limit) {
            return Err("limit must be between 1 and 1000".to_owned());
        }
        let query = memories::RecallQuery {
            context: params.context,
            all_contexts: params.all_contexts,
            query: params.query,
            kind: params.kind,
            since: params.since,
            until: params.until,
            limit,
        };
        reply(memories::recall(&self.app, &query).await)
    }

    #[tool(
        description = "List the user's contexts with their memory counts and which one is recording.",
        annotations(read_only_hint = true)
    )]
    async fn list_contexts(&self) -> ToolResult {
        reply(contexts::list(&self.app).await)
    }

    #[tool(description = "Create a new, empty context.")]
    async fn create_context(
        &self,
        Parameters(params): Parameters<CreateContextParams>,
    ) -> ToolResult {
        let description = params.description.unwrap_or_default();
        reply(contexts::create(&self.app, &params.name, &description).await)
    }

    #[tool(
        description = "Show one context: description, memory count, whether it is recording.",
        annotations(read_only_hint = true)
    )]
    async fn get_context(&self, Parameters(params): Parameters<ContextNameParams>) -> ToolResult {
        reply(contexts::show(&self.app, &params.context).await)
    }

    #[tool(
        description = "Start recording into a context: `remember` then writes there by default. Stops any other context that was recording."
    )]
    async fn start_recording(
        &self,
        Parameters(params): Parameters<ContextNameParams>,
    ) -> ToolResult {
        reply(contexts::start(&self.app, &params.context).await)
    }

    #[tool(description = "Stop recording into a context (by default the one recording now).")]
    async fn stop_recording(
        &self,
        Parameters(params): Parameters<StopRecordingParams>,
    ) -> ToolResult {
        reply(contexts::stop(&self.app, params.context.as_deref()).await)
    }

    #[tool(
        description = "Delete one memory by id.",
        annotations(destructive_hint = true)
    )]
    async fn forget(&self, Parameters(params): Parameters<ForgetParams>) -> ToolResult {
        reply(memories::forget(&self.app, params.id).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MemoryTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("eM", env!("CARGO_PKG_VERSION"))
                    .with_title("Ninaivalaigal memory"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves the tools on stdin/stdout until the client goes away.
pub async fn serve(app: App) -> Result<(), Failure> {
    let failure = |error: &dyn std::fmt::Display| {
        Failure::new(Kind::Other, format!("the MCP server stopped: {error}"))
    };
    let running = MemoryTools::new(Arc::new(app))
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| failure(&error))?;
    running.waiting().await.map_err(|error| failure(&error))?;
    Ok(())
}
