//! Per-user quotas: how many memories, and how many bytes of memory JSON,
//! one user may keep. Remember checks them against the user's usage, read
//! under a lock (see `db::usage::lock`).

use crate::error::Error;

/// What a user keeps now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Number of memories.
    pub memories: i64,
    /// Bytes of JSON, all memories together.
    pub bytes: i64,
}

/// The limits per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Most memories.
    pub max_memories: i64,
    /// Most bytes of JSON.
    pub max_bytes: i64,
}

/// What a refusal tells the user to do.
const WAY_OUT: &str = "forget memories you no longer need (`eM forget ID`, or delete a context) or ask the operator to raise the limit";

impl Quota {
    /// The quota of the settings (which clap keeps within `1..=i64::MAX`).
    pub fn new(max_memories: u64, max_bytes: u64) -> Self {
        Self {
            max_memories: i64::try_from(max_memories).unwrap_or(i64::MAX),
            max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
        }
    }

    /// `Ok` when one more memory of `bytes` fits beside `usage`; otherwise
    /// RESOURCE_EXHAUSTED naming the limit.
    pub fn admit(&self, usage: Usage, bytes: i64) -> Result<(), Error> {
        if usage.memories >= self.max_memories {
            return Err(Error::ResourceExhausted(format!(
                "you have {} memories, the most one user may keep (NINAIVALAIGAL_MAX_MEMORIES_PER_USER = {}); {WAY_OUT}",
                usage.memories, self.max_memories
            )));
        }
        if usage.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(Error::ResourceExhausted(format!(
                "your memories hold {} bytes of JSON; this one ({bytes} bytes) would pass the most one user may keep (NINAIVALAIGAL_MAX_MEMORY_BYTES_PER_USER = {} bytes); {WAY_OUT}",
                usage.bytes, self.max_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        max_memories: 3,
        max_bytes: 100,
    };

    fn refusal(usage: Usage, bytes: i64) -> String {
        match QUOTA.admit(usage, bytes) {
            Err(Error::ResourceExhausted(message)) => message,
            other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
    }

    #[test]
    fn a_memory_fits_up_to_each_limit_and_not_past_it() {
        let usage = |memories, bytes| Usage { memories, bytes };
        assert!(QUOTA.admit(usage(0, 0), 100).is_ok());
        assert!(QUOTA.admit(usage(2, 90), 10).is_ok());
        let count = refusal(usage(3, 0), 1);
        assert!(
            count.contains("NINAIVALAIGAL_MAX_MEMORIES_PER_USER = 3"),
            "{count}"
        );
        assert!(count.contains("forget"), "{count}");
        let bytes = refusal(usage(2, 90), 11);
        assert!(
            bytes.contains("NINAIVALAIGAL_MAX_MEMORY_BYTES_PER_USER = 100"),
            "{bytes}"
        );
        assert!(bytes.contains("operator"), "{bytes}");
        // Counts that drifted past the limits are refused, not wrapped.
        refusal(usage(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn settings_beyond_i64_are_capped() {
        let quota = Quota::new(u64::MAX, 5);
        assert_eq!(quota.max_memories, i64::MAX);
        assert_eq!(quota.max_bytes, 5);
    }
}
