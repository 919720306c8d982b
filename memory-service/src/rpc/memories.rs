//! Remember, Recall and Forget.

use diesel_async::AsyncPgConnection;
use futures::FutureExt;
use ninaivalaigal::memory_v1 as pb;
use tonic::Request;

use super::{MemoryState, caller, contexts::find_named, convert};
use crate::{
    db::{
        self, contexts, memories,
        models::{ContextRow, JsonText, NewMemory},
    },
    error::{Error, Result},
    input::{ContextName, MemoryData, MemoryId, MemoryType},
    paging::{MemoriesCursor, Position},
    recall::{ContextSelection, RecallQuery},
};

/// What Remember and Recall say when no context is named and none records.
pub const NO_RECORDING: &str =
    "no context is recording; run `eM start --context NAME` or name a context";

/// The named context, or the recording one when no name is given.
async fn resolve(conn: &mut AsyncPgConnection, name: Option<&ContextName>) -> Result<ContextRow> {
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
    let user = caller(&request)?;
    tracing::Span::current().record("user_id", user.user_id);
    let request = request.into_inner();
    let context = ContextName::parse_optional("context", &request.context)?;
    let memory_type = MemoryType::parse("type", &request.r#type)?;
    let data = JsonText(MemoryData::parse(request.data, state.max_memory_bytes)?.into_json());
    let owner_id = user.user_id;
    let (row, context_name) = db::with_user(&state.pool, &user, move |conn| {
        async move {
            let context = resolve(conn, context.as_ref()).await?;
            let new = NewMemory {
                owner_id,
                context_id: context.id,
                memory_type: memory_type.as_str(),
                data: &data,
            };
            let row = memories::insert(conn, &new).await?;
            Ok((row, context.name))
        }
        .boxed()
    })
    .await?;
    Ok(pb::RememberResponse {
        memory: Some(convert::memory(row, context_name)?),
    })
}

#[tracing::instrument(skip_all, fields(user_id))]
pub async fn recall(
    state: &MemoryState,
    request: Request<pb::RecallRequest>,
) -> Result<pb::RecallResponse> {
    let user = caller(&request)?;
    tracing::Span::current().record("user_id", user.user_id);
    let query = RecallQuery::try_from(request.into_inner())?;
    let page_size = query.page_size;
    let (mut rows, fingerprint) = db::with_user(&state.pool, &user, move |conn| {
        async move {
            let context_id = match &query.contexts {
                ContextSelection::All => None,
                ContextSelection::Named(name) => Some(find_named(conn, name).await?.id),
                ContextSelection::Recording => Some(resolve(conn, None).await?.id),
            };
            let fingerprint = query.fingerprint(context_id);
            let after = query.after(&fingerprint)?;
            let rows = memories::recall(conn, &query, context_id, after).await?;
            Ok((rows, fingerprint))
        }
        .boxed()
    })
    .await?;
    let more = page_size.cut(&mut rows);
    let next_page_token = match rows.last() {
        Some((last, _)) if more => MemoriesCursor::encode(
            Position {
                created_at: last.created_at,
                id: last.id,
            },
            &fingerprint,
        )?,
        _ => String::new(),
    };
    let memories = rows
        .into_iter()
        .map(|(row, context)| convert::memory(row, context))
        .collect::<Result<_>>()?;
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
    let user = caller(&request)?;
    let id = request.get_ref().id;
    tracing::Span::current()
        .record("user_id", user.user_id)
        .record("memory_id", id);
    let id = MemoryId::parse(id)?.get();
    let deleted = db::with_user(&state.pool, &user, move |conn| {
        async move { memories::delete(conn, id).await }.boxed()
    })
    .await?;
    if !deleted {
        return Err(Error::NotFound(format!("memory {id} not found")));
    }
    Ok(pb::ForgetResponse {})
}
