//! Recall's request, parsed once into a [`RecallQuery`]: every check of its
//! fields happens in [`RecallQuery::try_from`], and the handler and the
//! query builder take the typed value without checking again.

use chrono::{DateTime, Utc};
use ninaivalaigal::{
    memory_v1 as pb,
    paging::{PageLimits, PageSize},
    timestamp,
};

use crate::{
    error::Error,
    input::{ContextName, MemoryType},
    paging::{MemoriesCursor, Position, QueryFingerprint},
};

/// Recall's page sizes: 50 by default, at most 1000.
pub const PAGE_LIMITS: PageLimits = PageLimits::new(50, 1000);

/// Which contexts Recall searches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextSelection {
    /// The context that is recording (FAILED_PRECONDITION if none is).
    Recording,
    /// The caller's context of this name.
    Named(ContextName),
    /// Every context of the caller.
    All,
}

/// Memories created at or after `start` and before `end`; when both are
/// given, `start` is before `end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// The range from `start` to `end`, either open.
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<Self, Error> {
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            return Err(Error::InvalidArgument(
                "start_time must be before end_time".into(),
            ));
        }
        Ok(Self { start, end })
    }

    /// The earliest creation time included.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// The creation time from which on memories are excluded.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }
}

/// A full-text query (web-search syntax): trimmed, not empty, at most
/// [`TextQuery::MAX_CHARS`] characters, no NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextQuery(String);

impl TextQuery {
    /// Longest query, in characters.
    pub const MAX_CHARS: usize = 1000;

    /// Parses a request's `query`; blank means none.
    pub fn parse(value: &str) -> Result<Option<Self>, Error> {
        let text = value.trim();
        if text.chars().count() > Self::MAX_CHARS || text.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "query must be at most {} characters of text",
                Self::MAX_CHARS
            )));
        }
        Ok((!text.is_empty()).then(|| Self(text.to_owned())))
    }

    /// The query.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Recall request, checked.
#[derive(Clone, Debug)]
pub struct RecallQuery {
    /// Where to look.
    pub contexts: ContextSelection,
    /// Only memories of this type.
    pub memory_type: Option<MemoryType>,
    /// Only memories created in this range.
    pub time: TimeRange,
    /// Only memories matching this full-text query.
    pub text: Option<TextQuery>,
    /// How many memories one page holds.
    pub page_size: PageSize,
    /// Where the page starts; `None` for the first page.
    pub cursor: Option<MemoriesCursor>,
}

impl TryFrom<pb::RecallRequest> for RecallQuery {
    type Error = Error;

    fn try_from(request: pb::RecallRequest) -> Result<Self, Error> {
        let contexts = if request.all_contexts {
            if !request.context.is_empty() {
                return Err(Error::InvalidArgument(
                    "name a context or set all_contexts, not both".into(),
                ));
            }
            ContextSelection::All
        } else {
            match ContextName::parse_optional("context", &request.context)? {
                Some(name) => ContextSelection::Named(name),
                None => ContextSelection::Recording,
            }
        };
        let memory_type = if request.r#type.is_empty() {
            None
        } else {
            Some(MemoryType::parse("type", &request.r#type)?)
        };
        let time = TimeRange::new(
            request_time("start_time", request.start_time.as_ref())?,
            request_time("end_time", request.end_time.as_ref())?,
        )?;
        let text = TextQuery::parse(&request.query)?;
        let page_size = PAGE_LIMITS.page_size(request.page_size)?;
        let cursor = MemoriesCursor::decode(&request.page_token)?;
        Ok(Self {
            contexts,
            memory_type,
            time,
            text,
            page_size,
            cursor,
        })
    }
}

impl RecallQuery {
    /// Fingerprint of what the query selects, once its context is resolved
    /// to `context_id` (`None`: every context).
    pub fn fingerprint(&self, context_id: Option<i64>) -> QueryFingerprint {
        let micros = |time: Option<DateTime<Utc>>| {
            time.map_or(String::new(), |time| time.timestamp_micros().to_string())
        };
        QueryFingerprint::of(&[
            &context_id.map_or("all".to_owned(), |id| id.to_string()),
            self.memory_type.as_ref().map_or("", MemoryType::as_str),
            &micros(self.time.start),
            &micros(self.time.end),
            self.text.as_ref().map_or("", TextQuery::as_str),
        ])
    }

    /// Where the page starts, for the read that resolves the context; see
    /// [`MemoriesCursor::unchecked_position`]. [`RecallQuery::after`] must
    /// check it before any of that read's result is used.
    pub fn unchecked_after(&self) -> Option<Position> {
        self.cursor.as_ref().map(MemoriesCursor::unchecked_position)
    }

    /// Where the page starts, if the page token belongs to the query with
    /// this fingerprint.
    pub fn after(&self, fingerprint: &QueryFingerprint) -> Result<Option<Position>, Error> {
        self.cursor
            .as_ref()
            .map(|cursor| cursor.position(fingerprint))
            .transpose()
    }
}

/// A request's optional time.
fn request_time(
    field: &'static str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Error> {
    timestamp::from_optional(field, value)
        .map_err(|error| Error::InvalidArgument(error.to_string()))
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn parse(request: pb::RecallRequest) -> Result<RecallQuery, Error> {
        RecallQuery::try_from(request)
    }

    fn in_work() -> pb::RecallRequest {
        pb::RecallRequest {
            context: "work".into(),
            ..Default::default()
        }
    }

    fn message(request: pb::RecallRequest) -> String {
        match parse(request) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn an_empty_request_searches_the_recording_context() {
        let query = parse(pb::RecallRequest::default()).unwrap();
        assert_eq!(query.contexts, ContextSelection::Recording);
        assert_eq!(query.memory_type, None);
        assert_eq!(query.time, TimeRange::default());
        assert_eq!(query.text, None);
        assert_eq!(query.page_size.get(), 50);
        assert!(query.cursor.is_none());
    }

    #[test]
    fn every_field_is_parsed() {
        let query = parse(pb::RecallRequest {
            r#type: "note".into(),
            query: "  deploy failed ".into(),
            start_time: at(100),
            end_time: at(200),
            page_size: 5000,
            ..in_work()
        })
        .unwrap();
        assert_eq!(
            query.contexts,
            ContextSelection::Named(ContextName::parse("context", "work").unwrap())
        );
        assert_eq!(
            query.memory_type.as_ref().map(MemoryType::as_str),
            Some("note")
        );
        assert_eq!(query.time.start(), DateTime::from_timestamp(100, 0));
        assert_eq!(query.time.end(), DateTime::from_timestamp(200, 0));
        assert_eq!(
            query.text.as_ref().map(TextQuery::as_str),
            Some("deploy failed")
        );
        assert_eq!(query.page_size.get(), 1000);

        let all = parse(pb::RecallRequest {
            all_contexts: true,
            query: "   ".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(all.contexts, ContextSelection::All);
        assert_eq!(all.text, None);
    }

    #[test]
    fn bad_fields_are_invalid_arguments_that_say_why() {
        let both = pb::RecallRequest {
            all_contexts: true,
            ..in_work()
        };
        assert!(message(both).contains("not both"));
        assert!(
            message(pb::RecallRequest {
                context: "-x".into(),
                ..Default::default()
            })
            .contains("not a valid context name")
        );
        assert!(
            message(pb::RecallRequest {
                r#type: " x".into(),
                ..in_work()
            })
            .starts_with("type")
        );
        assert_eq!(
            message(pb::RecallRequest {
                start_time: at(100),
                end_time: at(100),
                ..in_work()
            }),
            "start_time must be before end_time"
        );
        assert!(
            message(pb::RecallRequest {
                start_time: Some(Timestamp {
                    seconds: 0,
                    nanos: -1
                }),
                ..in_work()
            })
            .starts_with("start_time is not a valid time")
        );
        assert!(
            message(pb::RecallRequest {
                end_time: at(i64::MAX),
                ..in_work()
            })
            .starts_with("end_time is not a valid time")
        );
        assert_eq!(
            message(pb::RecallRequest {
                query: "q".repeat(1001),
                ..in_work()
            }),
            "query must be at most 1000 characters of text"
        );
        assert!(
            message(pb::RecallRequest {
                query: "a\0b".into(),
                ..in_work()
            })
            .starts_with("query")
        );
        assert!(
            message(pb::RecallRequest {
                page_size: -5,
                ..in_work()
            })
            .contains("page_size must not be negative")
        );
        assert!(
            message(pb::RecallRequest {
                page_token: "not-a-token".into(),
                ..in_work()
            })
            .starts_with("page_token is not valid")
        );
    }

    #[test]
    fn a_page_token_is_bound_to_its_query() {
        let first = parse(in_work()).unwrap();
        let fingerprint = first.fingerprint(Some(7));
        let position = Position {
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            id: 3,
        };
        let token = MemoriesCursor::encode(position, &fingerprint).unwrap();
        let next = parse(pb::RecallRequest {
            page_token: token.clone(),
            ..in_work()
        })
        .unwrap();
        assert_eq!(
            next.after(&next.fingerprint(Some(7))).unwrap(),
            Some(position)
        );
        // Another context, or another filter, is another query.
        assert!(next.after(&next.fingerprint(Some(8))).is_err());
        assert!(next.after(&next.fingerprint(None)).is_err());
        let filtered = parse(pb::RecallRequest {
            r#type: "odd".into(),
            page_token: token,
            ..in_work()
        })
        .unwrap();
        assert!(filtered.after(&filtered.fingerprint(Some(7))).is_err());
        assert_eq!(first.after(&fingerprint).unwrap(), None);
    }
}
