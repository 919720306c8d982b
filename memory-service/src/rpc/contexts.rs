//! CreateContext, ListContexts, GetContext, DeleteContext, StartRecording
//! and StopRecording.

use futures::FutureExt;
use ninaivalaigal::{memory_v1 as pb, paging};
use tonic::Request;

use super::{MemoryState, convert};
use crate::{
    db::{
        self, Conn, contexts,
        models::{ContextRow, NewContext},
        usage,
    },
    error::{Error, Result, is_unique_violation},
    input::{ContextName, Description, visibility},
    paging::{CONTEXTS_PAGE_LIMITS, ContextsCursor},
    scope::RequestScope,
};

/// The caller's context of that name, or NOT_FOUND. Another user's context
/// of that name is invisible under RLS, so it gets exactly the same answer.
pub async fn find_named(conn: &mut Conn<'_>, name: &ContextName) -> Result<ContextRow> {
    contexts::find_by_name(conn, name.as_str())
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "context {:?} not found; `eM contexts` lists yours",
                name.as_str()
            ))
        })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn create(
    state: &MemoryState,
    request: Request<pb::CreateContextRequest>,
) -> Result<pb::CreateContextResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let request = request.into_inner();
    let name = ContextName::parse("name", &request.name)?;
    let description = Description::parse(&request.description)?;
    let visibility = visibility(request.visibility)?;
    let owner_id = scope.user.user_id;
    let new_name = name.clone();
    let row = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let new = NewContext {
                owner_id,
                name: new_name.as_str(),
                description: description.as_str(),
                visibility,
                created_at: None,
                updated_at: None,
            };
            contexts::insert(conn, &new).await
        }
        .boxed()
    })
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            Error::AlreadyExists(format!(
                "you already have a context named {:?}",
                name.as_str()
            ))
        } else {
            error
        }
    })?;
    Ok(pb::CreateContextResponse {
        context: Some(convert::context(row)?),
    })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn list(
    state: &MemoryState,
    request: Request<pb::ListContextsRequest>,
) -> Result<pb::ListContextsResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let request = request.into_inner();
    let page_size = CONTEXTS_PAGE_LIMITS.page_size(request.page_size)?;
    let cursor = paging::decode::<ContextsCursor>(&request.page_token)?;
    let mut rows = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let after = cursor.as_ref().map(|cursor| cursor.after.as_str());
            // One more than asked tells whether there is a next page.
            contexts::list(conn, after, page_size.fetch_limit()).await
        }
        .boxed()
    })
    .await?;
    let more = page_size.cut(&mut rows);
    let next_page_token = match rows.last() {
        Some(last) if more => paging::encode(&ContextsCursor::after(&last.name))?,
        _ => String::new(),
    };
    let contexts = rows
        .into_iter()
        .map(convert::context)
        .collect::<Result<_>>()?;
    Ok(pb::ListContextsResponse {
        contexts,
        next_page_token,
    })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn get(
    state: &MemoryState,
    request: Request<pb::GetContextRequest>,
) -> Result<pb::GetContextResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let name = ContextName::parse("name", &request.get_ref().name)?;
    let context = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let row = find_named(conn, &name).await?;
            convert::context(row)
        }
        .boxed()
    })
    .await?;
    Ok(pb::GetContextResponse {
        context: Some(context),
    })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn delete(
    state: &MemoryState,
    request: Request<pb::DeleteContextRequest>,
) -> Result<pb::DeleteContextResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let name = ContextName::parse("name", &request.get_ref().name)?;
    let owner_id = scope.user.user_id;
    let deleted_memories = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            // The usage row first, as every writer of memories takes it
            // (see `db::writer`), so an account's erasure never deadlocks
            // with this.
            usage::lock(conn, owner_id).await?;
            let row = find_named(conn, &name).await?;
            contexts::delete(conn, row.id).await
        }
        .boxed()
    })
    .await?;
    Ok(pb::DeleteContextResponse { deleted_memories })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn start_recording(
    state: &MemoryState,
    request: Request<pb::StartRecordingRequest>,
) -> Result<pb::StartRecordingResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let name = ContextName::parse("name", &request.get_ref().name)?;
    let owner_id = scope.user.user_id;
    let (context, previous) = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            // Concurrent starts take turns, so each sees the other's result.
            contexts::lock_all(conn, owner_id).await?;
            let target = find_named(conn, &name).await?;
            let mut previous = String::new();
            if let Some(current) = contexts::find_recording(conn).await?
                && current.id != target.id
            {
                contexts::set_recording(conn, current.id, false).await?;
                previous = current.name;
            }
            let target = if target.is_active {
                target
            } else {
                contexts::set_recording(conn, target.id, true).await?
            };
            Ok((convert::context(target)?, previous))
        }
        .boxed()
    })
    .await?;
    Ok(pb::StartRecordingResponse {
        context: Some(context),
        previous,
    })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn stop_recording(
    state: &MemoryState,
    request: Request<pb::StopRecordingRequest>,
) -> Result<pb::StopRecordingResponse> {
    let scope = RequestScope::of(&request)?;
    tracing::Span::current().record("user_id", scope.user.user_id);
    let name = ContextName::parse("name", &request.get_ref().name)?;
    let context = db::with_user(&state.pool, &scope, move |conn| {
        async move {
            let row = find_named(conn, &name).await?;
            // Stopping a context that is not recording changes nothing.
            let row = if row.is_active {
                contexts::set_recording(conn, row.id, false).await?
            } else {
                row
            };
            convert::context(row)
        }
        .boxed()
    })
    .await?;
    Ok(pb::StopRecordingResponse {
        context: Some(context),
    })
}
