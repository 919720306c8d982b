//! Request fields parsed into typed values at the edge ("parse, don't
//! validate"): past this module, code takes these types and does not re-check.

use std::fmt;

use chrono::{DateTime, Utc};
use ninaivalaigal::{json::struct_to_text, memory_v1 as pb, timestamp};
use prost_types::{Struct, Timestamp};
use uuid::Uuid;

use crate::error::Error;

/// A context name: 1 to 100 characters of ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContextName(String);

impl ContextName {
    /// Longest name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Parses `name`, naming the request `field` in the error.
    pub fn parse(field: &str, name: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::InvalidArgument(format!(
                "{field} {name:?} is not a valid context name: {why} (1 to {} characters of letters, digits, '.', '_' and '-', starting with a letter or digit)",
                Self::MAX_LEN
            ))
        };
        if name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{field} is required: the name of a context"
            )));
        }
        if name.len() > Self::MAX_LEN {
            return Err(invalid("too long"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid("it has a character that is not allowed"));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(invalid("it must start with a letter or digit"));
        }
        Ok(Self(name.to_owned()))
    }

    /// Parses an optional name: empty means none.
    pub fn parse_optional(field: &str, name: &str) -> Result<Option<Self>, Error> {
        if name.is_empty() {
            Ok(None)
        } else {
            Self::parse(field, name).map(Some)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContextName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a memory ("note", "command"...): 1 to 64 characters, no
/// control characters, no leading or trailing white space.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoryType(String);

impl MemoryType {
    /// Longest type, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a memory type.
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        if value.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{field} is required: the kind of memory, e.g. \"note\""
            )));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(Error::InvalidArgument(format!(
                "{field} is longer than {} characters",
                Self::MAX_LEN
            )));
        }
        if value.chars().any(char::is_control) || value.trim() != value {
            return Err(Error::InvalidArgument(format!(
                "{field} {value:?} may not contain control characters or start or end with white space"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// The type.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A context's description: at most 1000 characters, no NUL.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    /// Longest description, in characters.
    pub const MAX_LEN: usize = 1000;

    /// Parses a description (empty is fine).
    pub fn parse(value: &str) -> Result<Self, Error> {
        if value.chars().count() > Self::MAX_LEN {
            return Err(Error::InvalidArgument(format!(
                "description is longer than {} characters",
                Self::MAX_LEN
            )));
        }
        if value.contains('\0') {
            return Err(Error::InvalidArgument(
                "description may not contain NUL characters".into(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a context's visibility is stored: the only one there is so far.
pub const VISIBILITY_PRIVATE: &str = "private";

/// The stored visibility of a request's `visibility` (unspecified means
/// private).
pub fn visibility(value: i32) -> Result<&'static str, Error> {
    match pb::Visibility::try_from(value) {
        Ok(pb::Visibility::Unspecified | pb::Visibility::Private) => Ok(VISIBILITY_PRIVATE),
        Err(_) => Err(Error::InvalidArgument(format!(
            "visibility {value} is not known; use VISIBILITY_PRIVATE"
        ))),
    }
}

/// The id of a memory: positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryId(i64);

impl MemoryId {
    /// Parses a request's memory id.
    pub fn parse(id: i64) -> Result<Self, Error> {
        if id <= 0 {
            return Err(Error::InvalidArgument(format!(
                "id must be the positive id of a memory (got {id})"
            )));
        }
        Ok(Self(id))
    }

    /// The id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A memory's record as the JSON text that is stored: converted exactly
/// from the request's `Struct` (see [`ninaivalaigal::json`]) and at most
/// the service's limit in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryData(String);

impl MemoryData {
    /// Parses a request's `data`, which must be present and convert to at
    /// most `max_bytes` bytes of JSON.
    pub fn parse(data: Option<Struct>, max_bytes: usize) -> Result<Self, Error> {
        let data = data.ok_or_else(|| {
            Error::InvalidArgument("data is required: a JSON object (it may be empty)".into())
        })?;
        let json =
            struct_to_text(data).map_err(|error| Error::InvalidArgument(error.to_string()))?;
        if json.len() > max_bytes {
            return Err(Error::InvalidArgument(format!(
                "memory data is {} bytes of JSON; the limit is {max_bytes} bytes",
                json.len(),
            )));
        }
        Ok(Self(json))
    }

    /// The JSON text.
    pub fn into_json(self) -> String {
        self.0
    }
}

/// A client's request id: a UUID in its usual hyphenated form (any case),
/// which makes a retried write a no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Uuid);

impl RequestId {
    /// Longest text accepted before it is parsed (a UUID is 36 characters;
    /// braces or a `urn:uuid:` prefix are refused all the same).
    const MAX_LEN: usize = 36;

    /// Parses an optional request id: empty means none.
    pub fn parse_optional(field: &str, value: &str) -> Result<Option<Self>, Error> {
        if value.is_empty() {
            return Ok(None);
        }
        Self::parse(field, value).map(Some)
    }

    /// Parses a required request id.
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::InvalidArgument(format!(
                "{field} must be a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8 (choose one per memory and send it again on retries)"
            ))
        };
        if value.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{field} is required: a UUID that makes importing this memory again a no-op"
            )));
        }
        if value.len() != Self::MAX_LEN {
            return Err(invalid());
        }
        Uuid::try_parse(value).map(Self).map_err(|_| invalid())
    }

    /// The UUID.
    pub fn get(self) -> Uuid {
        self.0
    }
}

/// How far in the future an imported time may lie: the clocks of the
/// exporting and the importing server may differ this much.
pub const IMPORT_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The original time of an imported memory or context: a valid `Timestamp`
/// no later than `now` (plus [`IMPORT_CLOCK_SKEW`]), so imported memories
/// never sort ahead of ones yet to be written.
pub fn imported_time(
    field: &'static str,
    value: &Timestamp,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    let time = timestamp::from_timestamp(field, value)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    if time > now + IMPORT_CLOCK_SKEW {
        return Err(Error::InvalidArgument(format!(
            "{field} {time} is in the future; an imported time must be no later than now"
        )));
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names() {
        for good in ["a", "Project-1", "x.y_z", "9lives", &"n".repeat(100)] {
            assert!(ContextName::parse("name", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-lead",
            ".hidden",
            "has space",
            "slash/",
            "ünï",
            &"n".repeat(101),
        ] {
            assert!(ContextName::parse("name", bad).is_err(), "{bad}");
        }
        assert_eq!(ContextName::parse_optional("context", "").unwrap(), None);
        assert!(
            ContextName::parse_optional("context", "a")
                .unwrap()
                .is_some()
        );
        assert!(ContextName::parse_optional("context", "-a").is_err());
    }

    #[test]
    fn memory_types() {
        assert!(MemoryType::parse("type", "note").is_ok());
        assert!(MemoryType::parse("type", "décision").is_ok());
        for bad in ["", " note", "note\n", "a\0b", &"t".repeat(65)] {
            assert!(MemoryType::parse("type", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn visibilities_ids_and_data() {
        assert_eq!(visibility(0).unwrap(), VISIBILITY_PRIVATE);
        assert_eq!(visibility(1).unwrap(), VISIBILITY_PRIVATE);
        assert!(visibility(2).is_err());
        assert!(visibility(-1).is_err());
        assert_eq!(MemoryId::parse(7).unwrap().get(), 7);
        assert!(MemoryId::parse(0).is_err());
        assert!(MemoryId::parse(i64::MIN).is_err());
        assert!(MemoryData::parse(None, 100).is_err());
        let data = ninaivalaigal::json::text_to_struct(r#"{"a":"bc"}"#).unwrap();
        assert_eq!(
            MemoryData::parse(Some(data.clone()), 10)
                .unwrap()
                .into_json(),
            r#"{"a":"bc"}"#
        );
        assert!(MemoryData::parse(Some(data), 9).is_err());
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(
            RequestId::parse("request_id", id)
                .unwrap()
                .get()
                .to_string(),
            id
        );
        assert!(RequestId::parse("request_id", &id.to_uppercase()).is_ok());
        assert_eq!(RequestId::parse_optional("request_id", "").unwrap(), None);
        for bad in [
            "",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0cg",
            "' OR 1=1 --",
        ] {
            let error = RequestId::parse("request_id", bad).unwrap_err();
            assert!(error.to_string().contains("request_id"), "{error}");
        }
    }

    #[test]
    fn imported_times_are_valid_and_not_in_the_future() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |seconds| Timestamp { seconds, nanos: 0 };
        assert!(imported_time("create_time", &at(1_000_000_000), now).is_ok());
        assert!(imported_time("create_time", &at(1_800_000_060), now).is_ok());
        assert!(imported_time("create_time", &at(1_800_001_000), now).is_err());
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(imported_time("create_time", &bad, now).is_err());
    }
}
