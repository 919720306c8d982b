//! List paging as the API design guide has it: a `page_size` (0 means the
//! default, more than the maximum is lowered to it, negative is an error)
//! and an opaque `page_token`.
//!
//! A page token is base64url (no padding) of a JSON object: the cursor's
//! fields plus `"k"`, the cursor's kind, so the token of one list does not
//! parse as another's. Decoding refuses, as INVALID_ARGUMENT-worthy
//! [`PagingError`]s, tokens longer than [`MAX_TOKEN_LEN`], tokens that do not
//! decode, of another kind or with unknown fields, and any string holding a
//! NUL (PostgreSQL cannot store one, so it would otherwise fail there). A
//! token the client altered in other ways is at worst a different position
//! in the caller's own rows.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value as Json;

/// Longest page token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;

/// What goes wrong with paging parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// `page_size` below zero.
    #[error("page_size must not be negative (got {0})")]
    NegativePageSize(i32),
    /// A page token longer than [`MAX_TOKEN_LEN`].
    #[error(
        "page_token is longer than {MAX_TOKEN_LEN} bytes: pass the next_page_token of the previous response unchanged"
    )]
    TokenTooLong,
    /// A page token that is not one this list issued.
    #[error("page_token is not valid: pass the next_page_token of the previous response unchanged")]
    InvalidToken,
    /// A cursor that does not serialize as a JSON object: a bug in the
    /// server, not the client's fault.
    #[error("cannot encode a page token: {0}")]
    Encode(String),
}

impl PagingError {
    /// True when the request is at fault (every variant but [`Self::Encode`]).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Encode(_))
    }
}

/// The default and the largest page size of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimits {
    default: u32,
    max: u32,
}

impl PageLimits {
    /// Limits with this default and maximum (1 <= default <= max, checked
    /// when the constant is built).
    pub const fn new(default: u32, max: u32) -> Self {
        assert!(0 < default && default <= max, "need 1 <= default <= max");
        // Keeps `max + 1` (the one-more look-ahead) within i32 and i64.
        assert!(max < i32::MAX as u32, "max must be below i32::MAX");
        Self { default, max }
    }

    /// The page size a request's `page_size` asks for.
    pub fn page_size(self, requested: i32) -> Result<PageSize, PagingError> {
        match u32::try_from(requested) {
            Err(_) => Err(PagingError::NegativePageSize(requested)),
            Ok(0) => Ok(PageSize(self.default)),
            Ok(n) => Ok(PageSize(n.min(self.max))),
        }
    }

    /// The default page size.
    pub fn default_size(self) -> PageSize {
        PageSize(self.default)
    }
}

/// How many items one page holds: at least 1, at most its list's maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageSize(u32);

impl PageSize {
    /// The number of items.
    pub fn get(self) -> u32 {
        self.0
    }

    /// How many rows to fetch: one more than the page, to learn whether
    /// there is a next page (see [`PageSize::cut`]).
    pub fn fetch_limit(self) -> i64 {
        i64::from(self.0) + 1
    }

    /// Cuts `rows` (fetched with [`PageSize::fetch_limit`]) to the page;
    /// returns whether more rows follow.
    pub fn cut<T>(self, rows: &mut Vec<T>) -> bool {
        let size = self.0 as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        more
    }
}

/// A position in a list, carried by a page token.
pub trait Cursor: Serialize + DeserializeOwned {
    /// The kind tag written as `"k"`: unique per list. The cursor itself must
    /// serialize as a JSON object without a `k` field.
    const KIND: &'static str;
}

/// The page token for `cursor`.
pub fn encode<C: Cursor>(cursor: &C) -> Result<String, PagingError> {
    let mut value =
        serde_json::to_value(cursor).map_err(|error| PagingError::Encode(error.to_string()))?;
    let Json::Object(fields) = &mut value else {
        return Err(PagingError::Encode(format!(
            "a {} cursor is not a JSON object",
            C::KIND
        )));
    };
    if fields
        .insert("k".to_owned(), Json::String(C::KIND.to_owned()))
        .is_some()
    {
        return Err(PagingError::Encode(format!(
            "a {} cursor has its own `k` field",
            C::KIND
        )));
    }
    let json =
        serde_json::to_vec(&value).map_err(|error| PagingError::Encode(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The cursor of a page token; `None` for an empty token (the first page).
pub fn decode<C: Cursor>(token: &str) -> Result<Option<C>, PagingError> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(PagingError::TokenTooLong);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| PagingError::InvalidToken)?;
    let value: Json = serde_json::from_slice(&bytes).map_err(|_| PagingError::InvalidToken)?;
    if has_nul(&value) {
        return Err(PagingError::InvalidToken);
    }
    let Json::Object(mut fields) = value else {
        return Err(PagingError::InvalidToken);
    };
    if fields.remove("k") != Some(Json::String(C::KIND.to_owned())) {
        return Err(PagingError::InvalidToken);
    }
    serde_json::from_value(Json::Object(fields))
        .map(Some)
        .map_err(|_| PagingError::InvalidToken)
}

/// True when any string in `value`, key or value, holds a NUL.
fn has_nul(value: &Json) -> bool {
    match value {
        Json::String(text) => text.contains('\0'),
        Json::Array(items) => items.iter().any(has_nul),
        Json::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || has_nul(value)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct After {
        name: String,
        id: i64,
    }

    impl Cursor for After {
        const KIND: &'static str = "after";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Other {
        name: String,
        id: i64,
    }

    impl Cursor for Other {
        const KIND: &'static str = "other";
    }

    fn raw(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn page_sizes() {
        const LIMITS: PageLimits = PageLimits::new(50, 1000);
        assert_eq!(LIMITS.page_size(0).unwrap().get(), 50);
        assert_eq!(LIMITS.page_size(7).unwrap().get(), 7);
        assert_eq!(LIMITS.page_size(1000).unwrap().get(), 1000);
        assert_eq!(LIMITS.page_size(5000).unwrap().get(), 1000);
        assert_eq!(LIMITS.page_size(i32::MAX).unwrap().get(), 1000);
        assert_eq!(LIMITS.default_size().get(), 50);
        assert_eq!(LIMITS.page_size(-1), Err(PagingError::NegativePageSize(-1)));
        assert_eq!(
            LIMITS.page_size(i32::MIN).unwrap_err().to_string(),
            format!("page_size must not be negative (got {})", i32::MIN)
        );
    }

    #[test]
    fn pages_are_cut_with_one_row_of_look_ahead() {
        let size = PageLimits::new(2, 10).default_size();
        assert_eq!(size.fetch_limit(), 3);
        let mut rows = vec![1, 2, 3];
        assert!(size.cut(&mut rows));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert!(!size.cut(&mut rows));
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn tokens_round_trip_with_their_kind() {
        let cursor = After {
            name: "ctx".into(),
            id: 42,
        };
        let token = encode(&cursor).unwrap();
        assert_eq!(decode::<After>(&token).unwrap(), Some(cursor));
        let json = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let value: Json = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["k"], "after");
        assert_eq!(decode::<After>("").unwrap(), None);
    }

    #[test]
    fn crafted_tokens_are_invalid_not_internal() {
        let other = encode(&Other {
            name: "a".into(),
            id: 1,
        })
        .unwrap();
        for token in [
            other,
            "not a token!".to_owned(),
            "====".to_owned(),
            raw("[]"),
            raw("\"after\""),
            raw("{\"name\":\"a\",\"id\":1}"),
            raw("{\"k\":\"after\",\"name\":\"a\"}"),
            raw("{\"k\":\"after\",\"name\":\"a\",\"id\":1,\"x\":0}"),
            raw("{\"k\":\"after\",\"name\":\"a\",\"id\":\"1\"}"),
            raw("{\"k\":\"after\",\"name\":\"a\",\"id\":1e99}"),
            raw("{\"k\":\"after\",\"name\":\"\\ud800\",\"id\":1}"),
            raw("{\"k\":\"after\",\"name\":\"a\\u0000b\",\"id\":1}"),
            raw("{\"k\":\"after\",\"name\":\"a\",\"id\":1,\"\\u0000\":1}"),
            raw("{\"k\":\"after\\u0000\",\"name\":\"a\",\"id\":1}"),
        ] {
            assert_eq!(
                decode::<After>(&token),
                Err(PagingError::InvalidToken),
                "{token}"
            );
        }
    }

    #[test]
    fn long_tokens_are_refused_unread() {
        let token = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(decode::<After>(&token), Err(PagingError::TokenTooLong));
        assert!(PagingError::TokenTooLong.is_client_error());
    }

    #[test]
    fn cursors_that_are_not_objects_do_not_encode() {
        #[derive(Serialize, Deserialize)]
        struct Bare(i64);
        impl Cursor for Bare {
            const KIND: &'static str = "bare";
        }
        #[derive(Serialize, Deserialize)]
        struct Clash {
            k: String,
        }
        impl Cursor for Clash {
            const KIND: &'static str = "clash";
        }
        let error = encode(&Bare(1)).unwrap_err();
        assert!(!error.is_client_error());
        assert!(encode(&Clash { k: "x".into() }).is_err());
    }
}
