//! The access token of a request: the one strict reader of an
//! `authorization: Bearer <token>` header, for HTTP headers and gRPC
//! metadata alike.
//!
//! Accepted: exactly one `authorization` header, at most
//! [`MAX_HEADER_LEN`] bytes, holding the scheme `Bearer` (any case), white
//! space, and a token in the `b64token` syntax of RFC 6750 (letters, digits,
//! `-._~+/`, then optional trailing `=`), with optional white space around
//! the whole. Anything else is a [`BearerError`] whose message tells the
//! caller what to send.

use http::{HeaderMap, header::AUTHORIZATION};
use tonic::metadata::MetadataMap;

/// Longest `authorization` value read, in bytes. Access tokens are a few
/// hundred bytes; a longer value is refused before it is looked at.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Why a request has no usable bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `authorization` header.
    #[error(
        "missing access token: send `authorization: Bearer <access token>` (log in with `eM login`)"
    )]
    Missing,
    /// More than one `authorization` header.
    #[error("send one authorization header, not several")]
    Repeated,
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("authorization header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// Not `Bearer <token>`.
    #[error("authorization header must be `Bearer <access token>`")]
    Malformed,
}

/// The token in the value of an `authorization` header.
pub fn parse(value: &[u8]) -> Result<&str, BearerError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(BearerError::TooLong);
    }
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|b| matches!(b, b' ' | b'\t'))
        .ok_or(BearerError::Malformed)?;
    let (scheme, token) = value.split_at(split);
    let token = token.trim_ascii_start();
    if !scheme.eq_ignore_ascii_case(b"bearer") || !is_b64token(token) {
        return Err(BearerError::Malformed);
    }
    // A b64token is ASCII, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| BearerError::Malformed)
}

/// The bearer token of a request with these HTTP headers.
pub fn from_headers(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    parse(value.as_bytes())
}

/// The bearer token of a gRPC request with this metadata.
pub fn from_metadata(metadata: &MetadataMap) -> Result<&str, BearerError> {
    from_headers(metadata.as_ref())
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    body > 0
        && token[..body].iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(parse(b"Bearer abc"), Ok("abc"));
        assert_eq!(parse(b"bearer  abc "), Ok("abc"));
        assert_eq!(parse(b"BEARER\ta.b-c_d~e+f/g=="), Ok("a.b-c_d~e+f/g=="));
        for bad in [
            "",
            "abc",
            "Basic abc",
            "Bearer ",
            "Bearer",
            "Bearer abc def",
            "Bearer ==",
            "Bearer a=b",
            "Bearer a,b",
            "Bearerabc",
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(BearerError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(parse(b"Bearer \xff"), Err(BearerError::Malformed));
        assert_eq!(parse("Bearer é".as_bytes()), Err(BearerError::Malformed));
    }

    #[test]
    fn absurdly_long_headers_are_refused() {
        let mut value = b"Bearer ".to_vec();
        value.resize(MAX_HEADER_LEN, b'a');
        assert!(parse(&value).is_ok());
        value.push(b'a');
        assert_eq!(parse(&value), Err(BearerError::TooLong));
        let header = String::from_utf8(value).unwrap();
        assert_eq!(
            from_headers(&headers(&[&header])),
            Err(BearerError::TooLong)
        );
    }

    #[test]
    fn exactly_one_header_is_read() {
        assert_eq!(from_headers(&headers(&["Bearer abc"])), Ok("abc"));
        assert_eq!(from_headers(&HeaderMap::new()), Err(BearerError::Missing));
        assert_eq!(
            from_headers(&headers(&["Bearer abc", "Bearer def"])),
            Err(BearerError::Repeated)
        );
        assert_eq!(
            from_headers(&headers(&["Basic abc"])),
            Err(BearerError::Malformed)
        );
    }

    #[test]
    fn metadata_is_read_like_headers() {
        let mut metadata = MetadataMap::new();
        assert_eq!(from_metadata(&metadata), Err(BearerError::Missing));
        metadata.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(from_metadata(&metadata), Ok("abc"));
    }

    #[test]
    fn messages_say_what_to_send() {
        assert!(
            BearerError::Missing
                .to_string()
                .contains("Bearer <access token>")
        );
        assert!(
            BearerError::Malformed
                .to_string()
                .contains("Bearer <access token>")
        );
        assert!(BearerError::TooLong.to_string().contains("8192 bytes"));
    }
}
