//! `authorization` header values (`ninaivalaigal::bearer`): parsing never
//! panics, an accepted token is a non-empty RFC 6750 `b64token`, reading it
//! again from `Bearer <token>` gives the same token, and the header-map
//! reader agrees with the byte reader.

#![no_main]

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use ninaivalaigal::bearer::{self, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let parsed = bearer::parse(data);
    if let Ok(token) = parsed {
        assert!(data.len() <= MAX_HEADER_LEN);
        let body = token.trim_end_matches('=');
        assert!(!body.is_empty());
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        );
        assert_eq!(
            bearer::parse(format!("Bearer {token}").as_bytes()),
            Ok(token)
        );
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        assert_eq!(bearer::from_headers(&headers), parsed);
    }
});
