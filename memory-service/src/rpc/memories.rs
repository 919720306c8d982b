//! Remember, Recall and Forget.

use std::sync::Arc;

use futures::FutureExt;
use ninaivalaigal::memory_v1 as pb;
use prost::Message;
use tonic::Request;

use super::{MemoryState, contexts::find_named, convert};
use crate::{
    db::{
        self, Conn, contexts, memories,
        models::ContextRow,
        page::{self, PageCut, PlannedPage},
        remember::RememberOne,
        usage,
        writer::{Stored, Writer},
    },
    error::{Error, Result},
    input::{ContextName, MemoryId},
    offload,
    paging::{MemoriesCursor, Position},
    recall::{ContextSelection, RecallQuery},
    scope::RequestScope,
    writes::Write,
};

/// What Remember and Recall say when no context is named and none records.
pub const NO_RECORDING: &str =
    "no context is recording; run `eM start --context NAME` or name a context";

/// The named context, or the recording one when no name is given.
async fn resolve(conn: &mut Conn<'_>, name: Option<&ContextName>) -> Result<ContextRow> {
    match name {
        Some(name) => find_named(conn, name).await,
        None => contexts::find_recording(conn)
            .await?
            .ok_or_else(|| Error::FailedPrecondition(NO_RECORDING.into())),
    }
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn remember(
    state: &MemoryState,
    request: Request<pb::RememberRequest>,
) -> Result<pb::RememberResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let request = request.into_inner();
    let max_bytes = state.max_memory_bytes;
    let size = request.data.as_ref().map_or(0, |data| data.encoded_len());
    let write = offload::cpu_bound(size, move || Write::remember(request, max_bytes)).await??;
    let owner_id = scope.user.user_id;
    let quota = state.quota;
    let write = Arc::new(write);
    // The usual case in one statement, a transaction of one round trip
    // (see `db::remember`), where the database runs it. A write that brings
    // its own time (an import's) and every answer but a plain store take
    // the step-by-step path, in a transaction of their own: the statement
    // stored nothing.
    let deployment = state.deployment().await?;
    let one_statement = write.created_at.is_none() && deployment.remembers_in_one_statement();
    let stored_at_once = if one_statement {
        let write = Arc::clone(&write);
        db::with_user_statement(&state.pool, deployment, &scope, move |conn| {
            async move { RememberOne::new(owner_id, quota, &write).run(conn).await }.boxed()
        })
        .await?
    } else {
        None
    };
    let stored = match stored_at_once {
        Some((row, context)) => Stored {
            row,
            context,
            already_stored: false,
        },
        None => {
            db::with_user(&state.pool, &scope, move |conn| {
                async move {
                    // Locks the usage row until commit: a concurrent
                    // Remember waits for it and then sees this memory
                    // counted (and, for a retry, stored).
                    let mut writer = Writer::begin(conn, owner_id, quota).await?;
                    writer.store(conn, &write).await
                }
                .boxed()
            })
            .await?
        }
    };
    let already_stored = stored.already_stored;
    let memory = offload::cpu_bound(stored.row.data.0.len(), move || {
        convert::memory(stored.row, stored.context)
    })
    .await??;
    Ok(pb::RememberResponse {
        memory: Some(memory),
        already_stored,
    })
}

#[tracing::instrument(skip_all, fields(user_id, count))]
pub async fn remember_many(
    state: &MemoryState,
    request: Request<pb::RememberManyRequest>,
) -> Result<pb::RememberManyResponse> {
    let scope = RequestScope::of(&request)?;
    let request = request.into_inner();
    tracing::Span::current()
        .record("user_id", scope.user.user_id)
        .record("count", request.memories.len());
    let (limits, max_bytes) = (state.batch, state.max_memory_bytes);
    let writes = offload::cpu_bound(request.encoded_len(), move || {
        limits.remember_many(request, max_bytes)
    })
    .await??;
    let owner_id = scope.user.user_id;
    let quota = state.quota;
    let stored = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let mut writer = Writer::begin(conn, owner_id, quota).await?;
            let mut stored = Vec::with_capacity(writes.len());
            for (index, write) in writes.iter().enumerate() {
                // Any failure rolls the whole batch back.
                let one = writer
                    .store(conn, write)
                    .await
                    .map_err(|error| error.at("memories", index))?;
                stored.push(one);
            }
            Ok(stored)
        }
        .boxed()
    })
    .await?;
    Ok(pb::RememberManyResponse {
        memories: stored
            .into_iter()
            .map(convert::stored)
            .collect::<Result<_>>()?,
    })
}

/// Room a memory takes in a response besides its JSON (id, times, type and
/// context name, field tags), for planning a page before it is loaded.
const PLANNED_OVERHEAD_BYTES: usize = 256;

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn recall(
    state: &MemoryState,
    request: Request<pb::RecallRequest>,
) -> Result<pb::RecallResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let query = RecallQuery::try_from(request.into_inner())?;
    let cut = PageCut {
        size: query.page_size.get() as usize,
        bytes: state.max_response_bytes,
        overhead: PLANNED_OVERHEAD_BYTES,
    };
    // Sizes first, then only the data that fits the budget: without a text
    // query in one statement, a transaction of one round trip.
    let after = query.unchecked_after();
    let owner_id = scope.user.user_id;
    let for_page = query.clone();
    let page = if query.text.is_none() {
        let deployment = state.deployment().await?;
        db::with_user_statement(&state.pool, deployment, &scope, move |conn| {
            async move { page::plan_and_load(conn, &for_page, after, cut).await }.boxed()
        })
        .await?
    } else {
        db::with_user(&state.pool, &scope, move |conn| {
            async move { page::plan_then_load(conn, owner_id, &for_page, after, cut).await }.boxed()
        })
        .await?
    };
    // The plan finds the context itself; its result counts only once the
    // page token is found to belong to this query.
    let context_id = match (&query.contexts, page.planned.first()) {
        (ContextSelection::All, _) => None,
        (_, Some(first)) => Some(first.context_id),
        // No candidates: the context may not exist, which must be said
        // (NOT_FOUND, FAILED_PRECONDITION) before the token is judged.
        (selection, None) => {
            let name = match selection {
                ContextSelection::Named(name) => Some(name.clone()),
                _ => None,
            };
            let context = db::with_user(&state.pool, &scope, move |conn| {
                async move { resolve(conn, name.as_ref()).await }.boxed()
            })
            .await?;
            Some(context.id)
        }
    };
    let fingerprint = query.fingerprint(context_id);
    query.after(&fingerprint)?;
    let byte_limit = state.max_response_bytes;
    let PlannedPage {
        planned,
        taken,
        rows,
    } = page;
    let last_planned = planned[..taken].last().map(|m| m.position);
    let more = taken < planned.len();
    let positions: Vec<Position> = rows
        .iter()
        .map(|(row, _)| Position {
            created_at: row.created_at,
            id: row.id,
        })
        .collect();
    let json_bytes = rows.iter().map(|(row, _)| row.data.0.len()).sum();
    let memories =
        offload::cpu_bound(json_bytes, move || convert::page(rows, byte_limit)).await??;
    // The encoded page may be cut shorter than planned; it then resumes
    // right after its last memory.
    let resume_after = if memories.len() < positions.len() {
        memories
            .len()
            .checked_sub(1)
            .and_then(|last| positions.get(last))
            .copied()
    } else if more {
        last_planned
    } else {
        None
    };
    let next_page_token = match resume_after {
        Some(position) => MemoriesCursor::encode(position, &fingerprint)?,
        None => String::new(),
    };
    Ok(pb::RecallResponse {
        memories,
        next_page_token,
    })
}

#[tracing::instrument(skip_all, fields(user_id, memory_id))]
pub async fn forget(
    state: &MemoryState,
    request: Request<pb::ForgetRequest>,
) -> Result<pb::ForgetResponse> {
    let scope = RequestScope::of(&request)?;
    let id = request.get_ref().id;
    tracing::Span::current()
        .record("user_id", scope.user.user_id)
        .record("memory_id", id);
    let id = MemoryId::parse(id)?.get();
    let owner_id = scope.user.user_id;
    let deleted = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            // The usage row first, as every writer of memories takes it
            // (see `db::writer`): the trigger would take it after the
            // memory's row, the opposite order to an account's erasure.
            usage::lock(conn, owner_id).await?;
            memories::delete(conn, id).await
        }
        .boxed()
    })
    .await?;
    if !deleted {
        return Err(Error::NotFound(format!("memory {id} not found")));
    }
    Ok(pb::ForgetResponse {})
}
