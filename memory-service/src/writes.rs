//! Writes of memories parsed at the edge: one Remember, a RememberMany
//! batch, or a batch of an import. Past this module a write is typed and
//! within its limits; `db::writer` stores it.

use chrono::{DateTime, Utc};
use ninaivalaigal::memory_v1 as pb;

use crate::{
    db::models::JsonText,
    error::Error,
    input::{ContextName, Description, MemoryData, MemoryType, RequestId, imported_time},
};

/// The context a write goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The context of this name.
    Named(ContextName),
    /// The context that is recording.
    Recording,
}

/// One memory to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// Where it goes.
    pub target: Target,
    /// Its kind.
    pub memory_type: MemoryType,
    /// Its JSON, exactly as it will be stored.
    pub data: JsonText,
    /// Bytes of that JSON, for the quota.
    pub bytes: i64,
    /// The client's id for it: a retry with the same id stores nothing.
    pub request_id: Option<RequestId>,
    /// Its original time (imports); the time of the insert when `None`.
    pub created_at: Option<DateTime<Utc>>,
}

impl Write {
    fn new(
        target: Target,
        memory_type: MemoryType,
        data: MemoryData,
        request_id: Option<RequestId>,
        created_at: Option<DateTime<Utc>>,
    ) -> Self {
        let json = data.into_json();
        Self {
            target,
            memory_type,
            bytes: i64::try_from(json.len()).unwrap_or(i64::MAX),
            data: JsonText(json),
            request_id,
            created_at,
        }
    }

    /// Parses one Remember (or one memory of RememberMany).
    pub fn remember(request: pb::RememberRequest, max_memory_bytes: usize) -> Result<Self, Error> {
        let target = match ContextName::parse_optional("context", &request.context)? {
            Some(name) => Target::Named(name),
            None => Target::Recording,
        };
        let memory_type = MemoryType::parse("type", &request.r#type)?;
        let request_id = RequestId::parse_optional("request_id", &request.request_id)?;
        let data = MemoryData::parse(request.data, max_memory_bytes)?;
        Ok(Self::new(target, memory_type, data, request_id, None))
    }

    /// Parses one memory of an import batch: its context, time and request
    /// id are required.
    pub fn imported(
        memory: pb::ImportedMemory,
        max_memory_bytes: usize,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let target = Target::Named(ContextName::parse("context", &memory.context)?);
        let memory_type = MemoryType::parse("type", &memory.r#type)?;
        let request_id = RequestId::parse("request_id", &memory.request_id)?;
        let created_at = memory.create_time.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "create_time is required: the time the memory was first stored".into(),
            )
        })?;
        let created_at = imported_time("create_time", created_at, now)?;
        let data = MemoryData::parse(memory.data, max_memory_bytes)?;
        Ok(Self::new(
            target,
            memory_type,
            data,
            Some(request_id),
            Some(created_at),
        ))
    }
}

/// How many memories one batch may hold (RememberMany, ImportMemories).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most memories (and, for imports, most contexts) in one batch.
    pub max_memories: usize,
    /// Most bytes of the request message (checked by the server frame as
    /// the request arrives; here only for the messages).
    pub max_bytes: usize,
}

impl BatchLimits {
    /// INVALID_ARGUMENT unless `count` items of `field` fit in one batch.
    fn check_count(&self, field: &str, count: usize, may_be_empty: bool) -> Result<(), Error> {
        if count == 0 && !may_be_empty {
            return Err(Error::InvalidArgument(format!(
                "{field} is empty: send 1 to {} per batch",
                self.max_memories
            )));
        }
        if count > self.max_memories {
            return Err(Error::InvalidArgument(format!(
                "{field} holds {count}; a batch may hold at most {} (NINAIVALAIGAL_MAX_BATCH_MEMORIES): split it",
                self.max_memories
            )));
        }
        Ok(())
    }

    /// Parses a RememberMany batch; an error names the memory by its index.
    pub fn remember_many(
        &self,
        request: pb::RememberManyRequest,
        max_memory_bytes: usize,
    ) -> Result<Vec<Write>, Error> {
        self.check_count("memories", request.memories.len(), false)?;
        request
            .memories
            .into_iter()
            .enumerate()
            .map(|(index, memory)| {
                Write::remember(memory, max_memory_bytes).map_err(|e| e.at("memories", index))
            })
            .collect()
    }

    /// Parses an import batch; an error names the item by its index.
    pub fn import(
        &self,
        request: pb::ImportMemoriesRequest,
        max_memory_bytes: usize,
        now: DateTime<Utc>,
    ) -> Result<ImportBatch, Error> {
        self.check_count("contexts", request.contexts.len(), true)?;
        self.check_count("memories", request.memories.len(), true)?;
        if request.contexts.is_empty() && request.memories.is_empty() {
            return Err(Error::InvalidArgument(
                "the batch is empty: send contexts, memories or both".into(),
            ));
        }
        let contexts = request
            .contexts
            .into_iter()
            .enumerate()
            .map(|(index, context)| {
                ImportedContext::parse(context, now).map_err(|e| e.at("contexts", index))
            })
            .collect::<Result<_, _>>()?;
        let memories = request
            .memories
            .into_iter()
            .enumerate()
            .map(|(index, memory)| {
                Write::imported(memory, max_memory_bytes, now).map_err(|e| e.at("memories", index))
            })
            .collect::<Result<_, _>>()?;
        Ok(ImportBatch { contexts, memories })
    }
}

/// A context an import creates unless it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedContext {
    /// Its name.
    pub name: ContextName,
    /// Its description.
    pub description: Description,
    /// Its original time; now when `None`.
    pub created_at: Option<DateTime<Utc>>,
}

impl ImportedContext {
    fn parse(context: pb::ImportedContext, now: DateTime<Utc>) -> Result<Self, Error> {
        Ok(Self {
            name: ContextName::parse("name", &context.name)?,
            description: Description::parse(&context.description)?,
            created_at: context
                .create_time
                .as_ref()
                .map(|time| imported_time("create_time", time, now))
                .transpose()?,
        })
    }
}

/// One batch of an import, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportBatch {
    /// Contexts to create first.
    pub contexts: Vec<ImportedContext>,
    /// Memories to store, each with its time and request id.
    pub memories: Vec<Write>,
}

#[cfg(test)]
mod tests {
    use ninaivalaigal::json::text_to_struct;
    use prost_types::Timestamp;

    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_memories: 3,
        max_bytes: 1 << 20,
    };

    fn remember(context: &str, request_id: &str) -> pb::RememberRequest {
        pb::RememberRequest {
            context: context.into(),
            r#type: "note".into(),
            data: Some(text_to_struct(r#"{"a":1}"#).unwrap()),
            request_id: request_id.into(),
        }
    }

    #[test]
    fn a_batch_holds_one_to_the_limit_and_names_the_bad_memory() {
        let ok = LIMITS
            .remember_many(
                pb::RememberManyRequest {
                    memories: vec![remember("p", ""), remember("", "")],
                },
                100,
            )
            .unwrap();
        assert_eq!(
            ok[0].target,
            Target::Named(ContextName::parse("c", "p").unwrap())
        );
        assert_eq!(ok[1].target, Target::Recording);
        assert_eq!(ok[0].data.0, r#"{"a":1}"#);
        assert_eq!(ok[0].bytes, 7);
        let empty = LIMITS
            .remember_many(pb::RememberManyRequest { memories: vec![] }, 100)
            .unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        let many = LIMITS
            .remember_many(
                pb::RememberManyRequest {
                    memories: vec![remember("p", ""); 4],
                },
                100,
            )
            .unwrap_err();
        assert!(
            many.to_string()
                .contains("NINAIVALAIGAL_MAX_BATCH_MEMORIES"),
            "{many}"
        );
        let bad = LIMITS
            .remember_many(
                pb::RememberManyRequest {
                    memories: vec![remember("p", ""), remember("p", "not-a-uuid")],
                },
                100,
            )
            .unwrap_err();
        assert!(
            bad.to_string().starts_with("memories[1]: request_id"),
            "{bad}"
        );
    }

    #[test]
    fn an_imported_memory_needs_its_context_time_and_request_id() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let memory = pb::ImportedMemory {
            context: "p".into(),
            r#type: "note".into(),
            data: Some(text_to_struct("{}").unwrap()),
            create_time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 1000,
            }),
            request_id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
        };
        let write = Write::imported(memory.clone(), 100, now).unwrap();
        assert_eq!(
            write.created_at,
            DateTime::from_timestamp(1_700_000_000, 1000)
        );
        for (broken, field) in [
            (
                pb::ImportedMemory {
                    context: String::new(),
                    ..memory.clone()
                },
                "context",
            ),
            (
                pb::ImportedMemory {
                    request_id: String::new(),
                    ..memory.clone()
                },
                "request_id",
            ),
            (
                pb::ImportedMemory {
                    create_time: None,
                    ..memory.clone()
                },
                "create_time",
            ),
        ] {
            let batch = pb::ImportMemoriesRequest {
                contexts: vec![],
                memories: vec![memory.clone(), broken],
            };
            let error = LIMITS.import(batch, 100, now).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("memories[1]: {field}")),
                "{message}"
            );
        }
        let empty = LIMITS
            .import(pb::ImportMemoriesRequest::default(), 100, now)
            .unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
    }
}
