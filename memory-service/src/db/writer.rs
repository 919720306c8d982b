//! Stores parsed [`Write`]s inside one `with_user` transaction: Remember
//! stores one, RememberMany and ImportMemories a batch, all or none.
//!
//! A write with a request id first looks for the memory stored under it:
//! found, it is returned as it is (when it is the same memory) and nothing
//! is stored. Writers of one user take turns on the user's usage row (locked
//! by [`Writer::begin`] until commit), so a retry racing its original waits,
//! then finds the memory the original committed; the unique
//! `(owner_id, request_id)` with `ON CONFLICT DO NOTHING` keeps it to one
//! row even without that lock.

use std::collections::HashMap;

use super::Conn;

use super::{
    contexts, memories,
    models::{ContextRow, MemoryRow, NewContext, NewMemory},
    usage,
};
use crate::{
    error::{Error, Result},
    input::{ContextName, VISIBILITY_PRIVATE},
    quota::{Quota, Usage},
    rpc::NO_RECORDING,
    writes::{ImportedContext, Target, Write},
};

/// A memory as a write left it.
#[derive(Debug)]
pub struct Stored {
    /// The row.
    pub row: MemoryRow,
    /// Name of its context.
    pub context: String,
    /// True when the write's request id named this memory already: nothing
    /// was stored.
    pub already_stored: bool,
}

/// Stores writes of one user in the current transaction.
pub struct Writer {
    owner_id: i64,
    quota: Quota,
    /// The usage as locked, plus what this transaction stored since.
    usage: Usage,
    /// Contexts looked up (or created) in this transaction, by name.
    contexts: HashMap<String, ContextRow>,
}

impl Writer {
    /// Locks the user's usage row (until the transaction ends) and reads it.
    pub async fn begin(conn: &mut Conn<'_>, owner_id: i64, quota: Quota) -> Result<Self> {
        let usage = usage::lock(conn, owner_id).await?;
        Ok(Self {
            owner_id,
            quota,
            usage,
            contexts: HashMap::new(),
        })
    }

    /// Stores `write`, or returns the memory its request id names.
    pub async fn store(&mut self, conn: &mut Conn<'_>, write: &Write) -> Result<Stored> {
        if let Some(request_id) = write.request_id
            && let Some(stored) = memories::find_by_request_id(conn, request_id.get()).await?
        {
            return replay(write, stored);
        }
        let context = self.context(conn, &write.target).await?;
        self.quota.admit(self.usage, write.bytes)?;
        let new = NewMemory {
            owner_id: self.owner_id,
            context_id: context.id,
            memory_type: write.memory_type.as_str(),
            data: &write.data,
            request_id: write.request_id.map(|id| id.get()),
            created_at: write.created_at,
        };
        match memories::insert_once(conn, &new).await? {
            Some(row) => {
                self.usage.memories = self.usage.memories.saturating_add(1);
                self.usage.bytes = self.usage.bytes.saturating_add(write.bytes);
                Ok(Stored {
                    row,
                    context: context.name,
                    already_stored: false,
                })
            }
            // Another transaction stored it between the look-up and the
            // insert (only one that bypassed the usage lock could).
            None => {
                let request_id = write.request_id.ok_or_else(|| {
                    Error::Internal("an insert without request id did nothing".into())
                })?;
                let stored = memories::find_by_request_id(conn, request_id.get())
                    .await?
                    .ok_or_else(|| {
                        Error::Internal("a conflicting request id is not visible".into())
                    })?;
                replay(write, stored)
            }
        }
    }

    /// Creates a context of an import unless the user has one of its name;
    /// returns whether it was created.
    pub async fn create_context(
        &mut self,
        conn: &mut Conn<'_>,
        context: &ImportedContext,
    ) -> Result<bool> {
        if self.find(conn, &context.name).await?.is_some() {
            return Ok(false);
        }
        let row = contexts::insert(
            conn,
            &NewContext {
                owner_id: self.owner_id,
                name: context.name.as_str(),
                description: context.description.as_str(),
                visibility: VISIBILITY_PRIVATE,
                created_at: context.created_at,
                updated_at: context.created_at,
            },
        )
        .await?;
        self.contexts.insert(row.name.clone(), row);
        Ok(true)
    }

    async fn find(
        &mut self,
        conn: &mut Conn<'_>,
        name: &ContextName,
    ) -> Result<Option<ContextRow>> {
        if let Some(row) = self.contexts.get(name.as_str()) {
            return Ok(Some(row.clone()));
        }
        let row = contexts::find_by_name(conn, name.as_str()).await?;
        if let Some(row) = &row {
            self.contexts.insert(row.name.clone(), row.clone());
        }
        Ok(row)
    }

    async fn context(&mut self, conn: &mut Conn<'_>, target: &Target) -> Result<ContextRow> {
        match target {
            Target::Named(name) => self.find(conn, name).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "context {:?} not found; `eM contexts` lists yours",
                    name.as_str()
                ))
            }),
            Target::Recording => contexts::find_recording(conn)
                .await?
                .ok_or_else(|| Error::FailedPrecondition(NO_RECORDING.into())),
        }
    }
}

/// The memory a request id names, when `write` is the same memory: same
/// type, same data byte for byte, and the same context if the write names
/// one (a write to "the recording context" matches wherever the first went,
/// since recording may have moved between the retries). Otherwise
/// ALREADY_EXISTS, saying what differs.
fn replay(write: &Write, (row, context): (MemoryRow, String)) -> Result<Stored> {
    let differs = if row.memory_type != write.memory_type.as_str() {
        Some("its type")
    } else if row.data != write.data {
        Some("its data")
    } else {
        match &write.target {
            Target::Named(name) if name.as_str() != context => Some("its context"),
            _ => None,
        }
    };
    if let Some(what) = differs {
        return Err(Error::AlreadyExists(format!(
            "request_id {} was already used for memory {} in context {context:?}, and this one differs in {what}; a retry must send the same memory, and a new memory needs a new request_id",
            write
                .request_id
                .map(|id| id.get().to_string())
                .unwrap_or_default(),
            row.id
        )));
    }
    Ok(Stored {
        row,
        context,
        already_stored: true,
    })
}
