//! Page tokens, which clients hand back as they like: the kernel's
//! `paging::decode` for every cursor type of both services, and Recall's
//! `MemoriesCursor::decode`. Decoding never panics and refuses only as
//! INVALID_ARGUMENT; what decodes holds no NUL, and a cursor encoded again
//! decodes to the same cursor.

#![no_main]

use auth_service::input::UsersCursor;
use libfuzzer_sys::fuzz_target;
use memory_service::{
    error::Error,
    paging::{ContextsCursor, MemoriesCursor},
};
use ninaivalaigal::paging::{self, MAX_TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(cursor)) = paging::decode::<ContextsCursor>(token) {
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(!cursor.after.contains('\0'));
        let again = paging::encode(&cursor).expect("a cursor encodes");
        assert_eq!(paging::decode::<ContextsCursor>(&again), Ok(Some(cursor)));
    }
    if let Ok(Some(cursor)) = paging::decode::<UsersCursor>(token) {
        let again = paging::encode(&cursor).expect("a cursor encodes");
        let back = paging::decode::<UsersCursor>(&again).expect("decodes");
        assert_eq!(back.map(|c| c.after), Some(cursor.after));
    }
    if let Err(error) = MemoriesCursor::decode(token) {
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    }
});
