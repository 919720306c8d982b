//! Remember, Recall and Forget.

use diesel_async::AsyncPgConnection;
use futures::FutureExt;
use ninaivalaigal::memory_v1 as pb;
use tonic::Request;

use ninaivalaigal::json::struct_to_text;

use super::{MemoryState, caller, contexts::find_named, convert};
use crate::{
    db::{
        self, contexts,
        memories::{self, Selection},
        models::{ContextRow, JsonText, NewMemory},
    },
    error::{Error, Result},
    input::{ContextName, MemoryType, page_size},
    paging::{self, MemoriesCursor, QueryFingerprint},
};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 1000;
/// Longest full-text query, in characters.
const MAX_QUERY_CHARS: usize = 1000;

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

/// An optional context name: empty means "the recording context".
fn optional_context(value: &str) -> Result<Option<ContextName>> {
    if value.is_empty() {
        Ok(None)
    } else {
        ContextName::parse("context", value).map(Some)
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
    let context = optional_context(&request.context)?;
    let memory_type = MemoryType::parse("type", &request.r#type)?;
    let data = request.data.ok_or_else(|| {
        Error::InvalidArgument("data is required: a JSON object (it may be empty)".into())
    })?;
    let json = struct_to_text(data).map_err(|error| Error::InvalidArgument(error.to_string()))?;
    if json.len() > state.max_memory_bytes {
        return Err(Error::InvalidArgument(format!(
            "memory data is {} bytes of JSON; the limit is {} bytes",
            json.len(),
            state.max_memory_bytes
        )));
    }
    let data = JsonText(json);
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
    let request = request.into_inner();
    if request.all_contexts && !request.context.is_empty() {
        return Err(Error::InvalidArgument(
            "name a context or set all_contexts, not both".into(),
        ));
    }
    let context = optional_context(&request.context)?;
    let memory_type = if request.r#type.is_empty() {
        None
    } else {
        Some(MemoryType::parse("type", &request.r#type)?)
    };
    let start = convert::time("start_time", request.start_time.as_ref())?;
    let end = convert::time("end_time", request.end_time.as_ref())?;
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(Error::InvalidArgument(
            "start_time must be before end_time".into(),
        ));
    }
    let text = request.query.trim();
    if text.chars().count() > MAX_QUERY_CHARS || text.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "query must be at most {MAX_QUERY_CHARS} characters of text"
        )));
    }
    let text = (!text.is_empty()).then(|| text.to_owned());
    let limit = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let cursor = paging::decode::<MemoriesCursor>(&request.page_token)?;
    let all_contexts = request.all_contexts;

    let (mut rows, fingerprint) = db::with_user(&state.pool, &user, move |conn| {
        async move {
            let context_id = if all_contexts {
                None
            } else {
                Some(resolve(conn, context.as_ref()).await?.id)
            };
            let fingerprint = QueryFingerprint::of(&[
                &context_id.map_or("all".to_owned(), |id| id.to_string()),
                memory_type.as_ref().map_or("", MemoryType::as_str),
                &start.map_or(String::new(), |t| t.timestamp_micros().to_string()),
                &end.map_or(String::new(), |t| t.timestamp_micros().to_string()),
                text.as_deref().unwrap_or(""),
            ]);
            let after = cursor
                .map(|cursor| cursor.position(&fingerprint))
                .transpose()?;
            let selection = Selection {
                context_id,
                memory_type: memory_type.map(|t| t.as_str().to_owned()),
                start,
                end,
                text,
            };
            // One more than asked tells whether there is a next page.
            let rows = memories::recall(conn, &selection, after, limit + 1).await?;
            Ok((rows, fingerprint))
        }
        .boxed()
    })
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_page_token = match rows.last() {
        Some((last, _)) if more => paging::encode(&MemoriesCursor::after(
            last.created_at,
            last.id,
            &fingerprint,
        )),
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
    if id <= 0 {
        return Err(Error::InvalidArgument(format!(
            "id must be the positive id of a memory (got {id})"
        )));
    }
    let deleted = db::with_user(&state.pool, &user, move |conn| {
        async move { memories::delete(conn, id).await }.boxed()
    })
    .await?;
    if !deleted {
        return Err(Error::NotFound(format!("memory {id} not found")));
    }
    Ok(pb::ForgetResponse {})
}
