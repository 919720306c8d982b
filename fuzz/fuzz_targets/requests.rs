//! Request validation of every RPC of both services: the first byte picks
//! the RPC, the rest is decoded as its request message (as tonic would),
//! and the message goes through exactly the parsing its handler does before
//! any database work. Nothing may panic; what is accepted must keep the
//! promises of the typed values, and every refusal must become a status.

#![no_main]

use auth_service::input as auth_input;
use libfuzzer_sys::fuzz_target;
use memory_service::{
    input::{ContextName, Description, MemoryData, MemoryId, MemoryType, visibility},
    paging::{CONTEXTS_PAGE_LIMITS, ContextsCursor},
    recall::RecallQuery,
    writes::{BatchLimits, Write},
};
use ninaivalaigal::{auth_v1, memory_v1, paging};
use prost::Message;
use tonic::Status;

/// The memory-service's default limit (`NINAIVALAIGAL_MAX_MEMORY_BYTES`).
const MAX_MEMORY_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&rpc, message)) = data.split_first() else {
        return;
    };
    match rpc % 21 {
        0 => memory(create_context, message),
        1 => memory(list_contexts, message),
        2 => memory(|r: memory_v1::GetContextRequest| name(&r.name), message),
        3 => memory(|r: memory_v1::DeleteContextRequest| name(&r.name), message),
        4 => memory(|r: memory_v1::StartRecordingRequest| name(&r.name), message),
        5 => memory(|r: memory_v1::StopRecordingRequest| name(&r.name), message),
        6 => memory(remember, message),
        7 => memory(recall, message),
        8 => memory(
            |r: memory_v1::ForgetRequest| MemoryId::parse(r.id).map(drop),
            message,
        ),
        9 => auth(register, message),
        10 => auth(|r: auth_v1::LoginRequest| email(&r.email), message),
        11 => auth(
            |r: auth_v1::RefreshRequest| auth_input::refresh_token(&r.refresh_token).map(drop),
            message,
        ),
        // Logout reads an optional refresh token, trimmed; WhoAmI and
        // GetJwks have no fields.
        12 => auth(
            |r: auth_v1::LogoutRequest| {
                let _token = r.refresh_token.trim();
                Ok(())
            },
            message,
        ),
        13 => auth(|_: auth_v1::WhoAmIRequest| Ok(()), message),
        14 => auth(|_: auth_v1::GetJwksRequest| Ok(()), message),
        15 => auth(list_users, message),
        16 => auth(|r: auth_v1::DisableUserRequest| email(&r.email), message),
        17 => auth(|r: auth_v1::DeleteUserRequest| email(&r.email), message),
        18 => memory(remember_many, message),
        19 => memory(import_memories, message),
        // DeleteAccount's only field is the password, checked by bcrypt;
        // ExportMemories reads an optional context name.
        _ => memory(
            |r: memory_v1::ExportMemoriesRequest| {
                ContextName::parse_optional("context", &r.context).map(drop)
            },
            message,
        ),
    }
});

type MemoryResult = Result<(), memory_service::error::Error>;
type AuthResult = Result<(), auth_service::error::Error>;

/// Decodes a memory-service request and parses it; a refusal must convert
/// to a client error status.
fn memory<M: Message + Default>(parse: impl FnOnce(M) -> MemoryResult, bytes: &[u8]) {
    let Ok(request) = M::decode(bytes) else {
        return;
    };
    if let Err(error) = parse(request) {
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}

/// The same for the auth-service.
fn auth<M: Message + Default>(parse: impl FnOnce(M) -> AuthResult, bytes: &[u8]) {
    let Ok(request) = M::decode(bytes) else {
        return;
    };
    if let Err(error) = parse(request) {
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}

/// A context name, checked against its documented syntax.
fn name(raw: &str) -> MemoryResult {
    let parsed = ContextName::parse("name", raw)?;
    let bytes = parsed.as_str().as_bytes();
    assert_eq!(parsed.as_str(), raw);
    assert!((1..=ContextName::MAX_LEN).contains(&bytes.len()));
    assert!(bytes[0].is_ascii_alphanumeric());
    assert!(
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    );
    Ok(())
}

fn memory_type(raw: &str) -> MemoryResult {
    let parsed = MemoryType::parse("type", raw)?;
    let text = parsed.as_str();
    assert!((1..=MemoryType::MAX_LEN).contains(&text.chars().count()));
    assert!(!text.chars().any(char::is_control) && text.trim() == text);
    Ok(())
}

fn create_context(request: memory_v1::CreateContextRequest) -> MemoryResult {
    name(&request.name)?;
    let description = Description::parse(&request.description)?;
    assert!(!description.as_str().contains('\0'));
    visibility(request.visibility)?;
    Ok(())
}

fn list_contexts(request: memory_v1::ListContextsRequest) -> MemoryResult {
    let size = CONTEXTS_PAGE_LIMITS.page_size(request.page_size)?;
    assert!((1..=1000).contains(&size.get()));
    if let Some(cursor) = paging::decode::<ContextsCursor>(&request.page_token)? {
        assert!(!cursor.after.contains('\0'));
    }
    Ok(())
}

fn remember(request: memory_v1::RememberRequest) -> MemoryResult {
    ContextName::parse_optional("context", &request.context)?;
    memory_type(&request.r#type)?;
    let json = MemoryData::parse(request.data, MAX_MEMORY_BYTES)?.into_json();
    assert!(json.len() <= MAX_MEMORY_BYTES);
    // What is stored reads back as a record.
    ninaivalaigal::json::text_to_struct(&json).expect("stored JSON reads back");
    Ok(())
}

/// The memory-service's default batch limits.
const BATCH: BatchLimits = BatchLimits {
    max_memories: 100,
    max_bytes: 4 * 1024 * 1024,
};

/// Every write of a batch keeps the promises of a single Remember, and an
/// error names the item.
fn checked(write: &Write) {
    assert!(write.data.0.len() <= MAX_MEMORY_BYTES);
    assert_eq!(write.bytes as usize, write.data.0.len());
    ninaivalaigal::json::text_to_struct(&write.data.0).expect("stored JSON reads back");
}

fn remember_many(request: memory_v1::RememberManyRequest) -> MemoryResult {
    let count = request.memories.len();
    let writes = BATCH.remember_many(request, MAX_MEMORY_BYTES)?;
    assert!((1..=BATCH.max_memories).contains(&count) && writes.len() == count);
    writes.iter().for_each(checked);
    Ok(())
}

fn import_memories(request: memory_v1::ImportMemoriesRequest) -> MemoryResult {
    let now = chrono::Utc::now();
    let batch = BATCH.import(request, MAX_MEMORY_BYTES, now)?;
    for write in &batch.memories {
        checked(write);
        assert!(write.request_id.is_some());
        assert!(
            write
                .created_at
                .is_some_and(|time| time <= now + chrono::Duration::minutes(5))
        );
    }
    Ok(())
}

fn recall(request: memory_v1::RecallRequest) -> MemoryResult {
    let query = RecallQuery::try_from(request)?;
    if let (Some(start), Some(end)) = (query.time.start(), query.time.end()) {
        assert!(start < end);
    }
    // A token is only ever good for the query it was made for.
    let fingerprint = query.fingerprint(Some(1));
    if let Ok(Some(position)) = query.after(&fingerprint) {
        assert!(ninaivalaigal::timestamp::in_range(position.created_at));
    }
    Ok(())
}

fn email(raw: &str) -> AuthResult {
    let email = auth_input::Email::parse(raw)?;
    let text = email.as_str();
    assert!(!text.is_empty() && text.len() <= 254 && text.contains('@'));
    assert_eq!(text, text.to_lowercase());
    Ok(())
}

fn register(request: auth_v1::RegisterRequest) -> AuthResult {
    email(&request.email)?;
    let name = auth_input::DisplayName::parse(&request.name)?;
    assert!(!name.as_str().is_empty());
    let password = auth_input::NewPassword::parse(request.password)?;
    let password = password.expose();
    assert!(password.len() <= auth_input::MAX_PASSWORD_BYTES && !password.contains('\0'));
    Ok(())
}

fn list_users(request: auth_v1::ListUsersRequest) -> AuthResult {
    auth_input::USERS_PAGE_LIMITS.page_size(request.page_size)?;
    paging::decode::<auth_input::UsersCursor>(&request.page_token)?;
    Ok(())
}
