//! remember, recall, forget.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ninaivalaigal::{
    memory_v1::{ForgetRequest, RecallRequest, RememberRequest},
    timestamp::to_timestamp,
};
use prost_types::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::{
    client::App,
    exit::{Failure, Kind},
    output::{ForgottenView, MemoryView, RecallView, RememberedView},
};

const SHAPE_HINT: &str =
    r#"give a JSON object such as '{"type": "note", "data": {"message": "..."}}'"#;
const NO_CONTEXT_HINT: &str =
    "name a context with --context NAME, or start recording with `eM start --context NAME`";

/// Most memories the memory-service returns per page.
const MAX_PAGE: u32 = 1000;

/// A memory as `eM remember` takes it: `{"type": "note", "data": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryInput {
    #[serde(rename = "type")]
    kind: String,
    data: Json,
}

/// Splits a memory's JSON into the type and the data object.
pub fn parse_memory(text: &str) -> Result<(String, Map<String, Json>), Failure> {
    let invalid = |error: serde_json::Error| {
        Failure::usage(format!("the memory is not valid: {error}")).hint(SHAPE_HINT)
    };
    // Parsed as a value first: serde would also accept a struct written as an array.
    let value: Json = serde_json::from_str(text.trim()).map_err(invalid)?;
    if !value.is_object() {
        return Err(Failure::usage("the memory must be a JSON object").hint(SHAPE_HINT));
    }
    let input: MemoryInput = serde_json::from_value(value).map_err(invalid)?;
    match input.data {
        Json::Object(data) => Ok((input.kind, data)),
        _ => Err(Failure::usage("\"data\" must be a JSON object").hint(SHAPE_HINT)),
    }
}

/// Times a Remember is sent when the service cannot be reached or its
/// answer is lost: the retries carry the same request id, so a memory whose
/// first answer was lost is not stored twice.
const REMEMBER_ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubled before each next one.
const REMEMBER_BACKOFF: Duration = Duration::from_millis(250);

/// Stores one memory in `context`, or in the context that is recording,
/// under `request_id` (a fresh one when `None`), retrying on its own when
/// no answer came.
pub async fn remember(
    app: &App,
    context: Option<&str>,
    kind: &str,
    data: Map<String, Json>,
    request_id: Option<Uuid>,
) -> Result<RememberedView, Failure> {
    let data = ninaivalaigal::json::object_to_struct(data)
        .map_err(|error| Failure::usage(format!("the memory's data cannot be stored: {error}")))?;
    // One id per logical write, the same on every retry below.
    let request_id = request_id.unwrap_or_else(Uuid::new_v4);
    let request = RememberRequest {
        context: context.unwrap_or_default().to_owned(),
        r#type: kind.to_owned(),
        data: Some(data),
        request_id: request_id.hyphenated().to_string(),
    };
    let mut backoff = REMEMBER_BACKOFF;
    let mut attempt = 1;
    let response = loop {
        let sent = app
            .memory(|mut client, bearer| {
                let request = bearer.request(request.clone());
                async move { client.remember(request).await }
            })
            .await;
        match sent {
            Err(failure) if failure.kind == Kind::Unavailable && attempt < REMEMBER_ATTEMPTS => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => break other.map_err(context_hints)?,
        }
    };
    let memory = response
        .memory
        .ok_or_else(|| Failure::new(Kind::Other, "the memory-service sent no memory back"))?;
    Ok(RememberedView {
        memory: memory.try_into()?,
        request_id: request_id.hyphenated().to_string(),
        already_stored: response.already_stored,
    })
}

/// What to recall.
#[derive(Clone, Debug, Default)]
pub struct RecallQuery {
    pub context: Option<String>,
    pub all_contexts: bool,
    pub query: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// Up to `limit` memories, newest first, across as many pages as needed.
pub async fn recall(app: &App, query: &RecallQuery) -> Result<RecallView, Failure> {
    let limit = query.limit.max(1);
    let start_time = bound("since", query.since)?;
    let end_time = bound("until", query.until)?;
    let mut memories = Vec::new();
    let mut page_token = String::new();
    loop {
        let remaining = limit - u32::try_from(memories.len()).unwrap_or(limit);
        let request = RecallRequest {
            context: query.context.clone().unwrap_or_default(),
            all_contexts: query.all_contexts,
            query: query.query.clone().unwrap_or_default(),
            r#type: query.kind.clone().unwrap_or_default(),
            start_time,
            end_time,
            page_size: i32::try_from(remaining.min(MAX_PAGE)).unwrap_or(50),
            page_token: page_token.clone(),
        };
        let page = app
            .memory(|mut client, bearer| {
                let request = bearer.request(request.clone());
                async move { client.recall(request).await }
            })
            .await
            .map_err(context_hints)?;
        for memory in page.memories {
            memories.push(MemoryView::try_from(memory)?);
        }
        let done = page.next_page_token.is_empty() || page.next_page_token == page_token;
        page_token = page.next_page_token;
        if done || memories.len() >= limit as usize {
            break;
        }
    }
    memories.truncate(limit as usize);
    Ok(RecallView {
        memories,
        next_page_token: Some(page_token).filter(|token| !token.is_empty()),
    })
}

/// Deletes one memory.
pub async fn forget(app: &App, id: i64) -> Result<ForgottenView, Failure> {
    app.memory(|mut client, bearer| {
        let request = bearer.request(ForgetRequest { id });
        async move { client.forget(request).await }
    })
    .await
    .map_err(|failure| {
        failure.hint_if(
            Kind::NotFound,
            "run `eM recall` to see the ids of your memories",
        )
    })?;
    Ok(ForgottenView { id })
}

fn context_hints(failure: Failure) -> Failure {
    failure
        .hint_if(Kind::Conflict, NO_CONTEXT_HINT)
        .hint_if(Kind::NotFound, "run `eM contexts` to see your contexts")
}

/// A `since`/`until` bound as a `Timestamp`, or a usage error naming it.
fn bound(field: &'static str, time: Option<DateTime<Utc>>) -> Result<Option<Timestamp>, Failure> {
    time.map(|time| to_timestamp(field, time))
        .transpose()
        .map_err(|error| Failure::new(Kind::Usage, error.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_documented_shape_splits_into_type_and_data() {
        let (kind, data) =
            parse_memory(r#" {"type": "note", "data": {"message": "hi", "n": [1, 2]}} "#).unwrap();
        assert_eq!(kind, "note");
        assert_eq!(Json::Object(data), json!({"message": "hi", "n": [1, 2]}));
    }

    #[test]
    fn time_bounds_a_timestamp_cannot_hold_are_usage_errors() {
        let time = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        assert_eq!(
            bound("since", Some(time)).unwrap(),
            Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5
            })
        );
        assert_eq!(bound("since", None).unwrap(), None);
        let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 10_000, 1, 1, 0, 0, 0).unwrap();
        let failure = bound("until", Some(far)).unwrap_err();
        assert_eq!(failure.kind, Kind::Usage);
        assert!(failure.message.starts_with("until is not a valid time"));
    }

    #[test]
    fn other_shapes_are_usage_errors_with_an_example() {
        for bad in [
            "not json",
            r#"{"type": "note"}"#,
            r#"{"data": {}}"#,
            r#"{"type": "note", "data": "text"}"#,
            r#"{"type": "note", "data": [1]}"#,
            r#"{"type": "note", "data": {}, "extra": 1}"#,
            r#"["note", {}]"#,
        ] {
            let failure = parse_memory(bad).unwrap_err();
            assert_eq!(failure.kind, Kind::Usage, "{bad}");
            assert_eq!(failure.hint.as_deref(), Some(SHAPE_HINT), "{bad}");
        }
    }
}
