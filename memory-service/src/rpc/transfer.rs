//! ExportMemories and ImportMemories: taking a user's memories elsewhere
//! and bringing them back.

use std::{pin::Pin, sync::Arc};

use chrono::Utc;
use futures::{FutureExt, Stream};
use ninaivalaigal::memory_v1::{self as pb, export_memories_response::Item};
use prost::Message;
use tokio::sync::mpsc;
use tonic::{Request, Status};
use tracing::Instrument;

use super::{MemoryState, contexts::find_named, convert};
use crate::{
    db::{self, Conn, contexts, memories, models::ContextRow, writer::Writer},
    error::{Error, Result},
    input::ContextName,
    offload,
    paging::Position,
    scope::RequestScope,
};

/// The stream of an export.
pub type ExportStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportMemoriesResponse, Status>> + Send + 'static>>;

/// Memories read per statement. With memories of at most
/// NINAIVALAIGAL_MAX_MEMORY_BYTES (64 KiB by default), a page holds at most
/// 2 MiB of JSON; with the messages buffered below, that bounds what one
/// export holds in memory whatever the size of the account.
const EXPORT_PAGE_MEMORIES: i64 = 32;
/// Contexts read per statement.
const EXPORT_PAGE_CONTEXTS: i64 = 100;
/// Messages converted ahead of the client's reading.
const EXPORT_BUFFER_MESSAGES: usize = 8;

/// Where the export stream goes; false once the client has gone.
struct Sink(mpsc::Sender<Result<pb::ExportMemoriesResponse, Status>>);

impl Sink {
    async fn send(&self, item: Item) -> bool {
        self.0
            .send(Ok(pb::ExportMemoriesResponse { item: Some(item) }))
            .await
            .is_ok()
    }
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn export(
    state: &Arc<MemoryState>,
    request: Request<pb::ExportMemoriesRequest>,
) -> Result<ExportStream> {
    let scope = RequestScope::of(&request)?;
    let user_id = scope.user.user_id;
    tracing::Span::current().record("user_id", user_id);
    let context = ContextName::parse_optional("context", &request.get_ref().context)?;
    let permit = state.exports.admit(user_id)?;
    let timeout = state.exports.timeout;
    let pool = state.pool.clone();
    let (sender, receiver) = mpsc::channel(EXPORT_BUFFER_MESSAGES);
    let sink = Sink(sender.clone());
    tokio::spawn(
        async move {
            let export = db::with_user_snapshot(&pool, user_id, timeout, move |conn| {
                write_export(conn, context, sink).boxed()
            });
            let failure = match tokio::time::timeout(timeout, export).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(Status::from(error)),
                Err(_) => Some(Status::deadline_exceeded(format!(
                    "the export did not finish within {} s (NINAIVALAIGAL_EXPORT_TIMEOUT_SECONDS); export one context at a time",
                    timeout.as_secs()
                ))),
            };
            if let Some(status) = failure {
                // The client may have gone already; nothing to tell then.
                let _ = sender.send(Err(status)).await;
            }
            drop(permit);
        }
        .instrument(tracing::Span::current()),
    );
    Ok(Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )))
}

/// Sends the selected contexts, each followed by its memories, from the
/// transaction's snapshot; stops early, successfully, when the client goes.
async fn write_export(conn: &mut Conn<'_>, context: Option<ContextName>, sink: Sink) -> Result<()> {
    if let Some(name) = context {
        let row = find_named(conn, &name).await?;
        export_context(conn, row, &sink).await?;
        return Ok(());
    }
    let mut after: Option<String> = None;
    loop {
        let rows = contexts::list(conn, after.as_deref(), EXPORT_PAGE_CONTEXTS).await?;
        let full = rows.len() as i64 == EXPORT_PAGE_CONTEXTS;
        after = rows.last().map(|row| row.name.clone());
        for row in rows {
            if !export_context(conn, row, &sink).await? {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Sends one context and its memories, oldest first; false when the client
/// has gone.
async fn export_context(conn: &mut Conn<'_>, row: ContextRow, sink: &Sink) -> Result<bool> {
    let (context_id, name) = (row.id, row.name.clone());
    if !sink.send(Item::Context(convert::context(row)?)).await {
        return Ok(false);
    }
    let mut after = None;
    loop {
        let rows = memories::export_page(conn, context_id, after, EXPORT_PAGE_MEMORIES).await?;
        let full = rows.len() as i64 == EXPORT_PAGE_MEMORIES;
        after = rows.last().map(|row| Position {
            created_at: row.created_at,
            id: row.id,
        });
        let bytes = rows.iter().map(|row| row.data.0.len()).sum();
        let name = name.clone();
        let converted = offload::cpu_bound(bytes, move || {
            rows.into_iter()
                .map(|row| convert::memory(row, name.clone()))
                .collect::<Result<Vec<_>>>()
        })
        .await??;
        for memory in converted {
            if !sink.send(Item::Memory(memory)).await {
                return Ok(false);
            }
        }
        if !full {
            return Ok(true);
        }
    }
}

#[tracing::instrument(skip_all, fields(user_id, contexts, memories))]
pub async fn import(
    state: &MemoryState,
    request: Request<pb::ImportMemoriesRequest>,
) -> Result<pb::ImportMemoriesResponse> {
    let scope = RequestScope::of(&request)?;
    let request = request.into_inner();
    tracing::Span::current()
        .record("user_id", scope.user.user_id)
        .record("contexts", request.contexts.len())
        .record("memories", request.memories.len());
    let (limits, max_bytes, now) = (state.batch, state.max_memory_bytes, Utc::now());
    let batch = offload::cpu_bound(request.encoded_len(), move || {
        limits.import(request, max_bytes, now)
    })
    .await??;
    let owner_id = scope.user.user_id;
    let quota = state.quota;
    db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let mut writer = Writer::begin(conn, owner_id, quota).await?;
            let mut response = pb::ImportMemoriesResponse::default();
            for (index, context) in batch.contexts.iter().enumerate() {
                let created = writer
                    .create_context(conn, context)
                    .await
                    .map_err(|error| error.at("contexts", index))?;
                if created {
                    response.contexts_created += 1;
                } else {
                    response.contexts_skipped += 1;
                }
            }
            for (index, write) in batch.memories.iter().enumerate() {
                let stored = writer
                    .store(conn, write)
                    .await
                    .map_err(|error| error.at("memories", index))?;
                if stored.already_stored {
                    response.memories_skipped += 1;
                } else {
                    response.memories_created += 1;
                }
            }
            Ok::<_, Error>(response)
        }
        .boxed()
    })
    .await
}
