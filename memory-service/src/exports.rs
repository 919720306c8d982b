//! Admission of exports. An export holds a database connection and a
//! snapshot for as long as its client reads, outside the server frame's
//! in-flight limit and request timeout (which end when a streaming
//! response starts): so this bounds how many run at once, one per user,
//! and for how long each may run.

use std::{collections::HashSet, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// The exports running now.
pub struct Exports {
    slots: Arc<Semaphore>,
    max: usize,
    users: Arc<Mutex<HashSet<i64>>>,
    /// Longest an export may run.
    pub timeout: Duration,
}

/// One admitted export; dropping it frees its slot and its user.
pub struct ExportPermit {
    _slot: OwnedSemaphorePermit,
    users: Arc<Mutex<HashSet<i64>>>,
    user_id: i64,
}

impl Drop for ExportPermit {
    fn drop(&mut self) {
        self.users.lock().remove(&self.user_id);
    }
}

impl Exports {
    /// At most `max` exports at once, each for at most `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            users: Arc::new(Mutex::new(HashSet::new())),
            timeout,
        }
    }

    /// Admits an export of `user_id`, or says which limit refuses it
    /// (RESOURCE_EXHAUSTED).
    pub fn admit(&self, user_id: i64) -> Result<ExportPermit, Error> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            Error::ResourceExhausted(format!(
                "{} exports are running, the most at once (NINAIVALAIGAL_MAX_CONCURRENT_EXPORTS); retry in a minute",
                self.max
            ))
        })?;
        if !self.users.lock().insert(user_id) {
            return Err(Error::ResourceExhausted(
                "an export of yours is running already; one export per user at a time".into(),
            ));
        }
        Ok(ExportPermit {
            _slot: slot,
            users: self.users.clone(),
            user_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_export_per_user_and_at_most_the_limit() {
        let exports = Exports::new(2, Duration::from_secs(1));
        let first = exports.admit(1).unwrap();
        let same_user = exports.admit(1).err().unwrap().to_string();
        assert!(same_user.contains("one export per user"), "{same_user}");
        let second = exports.admit(2).unwrap();
        let full = exports.admit(3).err().unwrap().to_string();
        assert!(
            full.contains("NINAIVALAIGAL_MAX_CONCURRENT_EXPORTS"),
            "{full}"
        );
        drop(first);
        let again = exports.admit(1).unwrap();
        drop((second, again));
        assert!(exports.admit(3).is_ok());
    }
}
