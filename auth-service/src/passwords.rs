//! bcrypt hashing and verification, run off the async runtime and bounded
//! by a semaphore: a burst of logins queues here instead of taking every
//! core from the requests that need none.
//!
//! The hashes run on threads of their own at a lower scheduling priority
//! (see [`HashingPriority`]): when the CPU is contended, the async runtime,
//! the database and the memory-service beside it go first, so a login flood
//! slows logins rather than every other request.
//!
//! Hashes of new passwords (registrations) first take one of a smaller set
//! of permits before they queue for a hashing slot, so at most that many of
//! them are ever ahead of a login in the (first come, first served) queue:
//! a flood of registrations waits among itself and cannot starve logins.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::sync::{Semaphore, oneshot};

use crate::{
    error::{Error, Result},
    hashing_priority::HashingPriority,
    input::{MAX_PASSWORD_BYTES, NewPassword},
};

/// How much hashing may run, and how it yields to other work.
#[derive(Clone, Copy, Debug)]
pub struct HashingLimits {
    /// Hashes at once (threads of the hashing pool).
    pub concurrency: usize,
    /// Of those, hashes of new passwords (registrations).
    pub new_password_concurrency: usize,
    /// How long a hash may wait for a slot before the request is answered
    /// UNAVAILABLE.
    pub queue_timeout: Duration,
    /// How the hashing threads yield the CPU to other work.
    pub priority: HashingPriority,
}

/// Hashes and verifies passwords with bcrypt.
#[derive(Clone)]
pub struct Passwords {
    cost: u32,
    pool: Arc<rayon::ThreadPool>,
    slots: Arc<Semaphore>,
    /// Taken before a slot by hashes of new passwords.
    new_password_permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A hash of a random password at the configured cost, verified when the
    /// email is unknown so that the answer takes as long as for a known one.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Prepares hashing at `cost` within `limits`.
    pub async fn new(cost: u32, limits: HashingLimits) -> Result<Self> {
        let concurrency = limits.concurrency.max(1);
        let priority = limits.priority;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency)
            .thread_name(|index| format!("bcrypt-{index}"))
            .start_handler(move |_| priority.apply_to_this_thread())
            .build()
            .context("cannot start the password hashing threads")?;
        let mut passwords = Self {
            cost,
            pool: Arc::new(pool),
            slots: Arc::new(Semaphore::new(concurrency)),
            new_password_permits: Arc::new(Semaphore::new(limits.new_password_concurrency.max(1))),
            queue_timeout: limits.queue_timeout,
            dummy_hash: Arc::from(""),
        };
        let dummy_password = uuid::Uuid::new_v4().to_string();
        passwords.dummy_hash = passwords
            .run(move || {
                bcrypt::hash(dummy_password, cost).context("cannot compute the dummy bcrypt hash")
            })
            .await?
            .into();
        Ok(passwords)
    }

    /// Hashes a new password, within the share of new passwords.
    pub async fn hash(&self, password: &NewPassword) -> Result<String> {
        let password = password.expose().to_owned();
        let cost = self.cost;
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        let permit =
            tokio::time::timeout_at(deadline, self.new_password_permits.clone().acquire_owned())
                .await
                .map_err(|_| busy())?
                .context("hashing semaphore closed")?;
        // The policy (at most 72 bytes, no NUL) means bcrypt reads every byte
        // of it; non_truncating_hash would also refuse exactly 72 bytes.
        let hash = self
            .run_until(deadline, move || {
                bcrypt::hash(password, cost).context("bcrypt hash failed")
            })
            .await;
        drop(permit);
        hash
    }

    /// True when `password` matches `hash`. With no hash (unknown account) a
    /// dummy hash is verified instead and the answer is false, in about the
    /// same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash).to_owned();
        // Longer than any password the policy lets in: it cannot match, and
        // bcrypt would only read its first 72 bytes. Spend the time anyway.
        let acceptable = password.len() <= MAX_PASSWORD_BYTES && !password.contains('\0');
        let password = if acceptable {
            password.to_owned()
        } else {
            String::new()
        };
        let matches = self
            .run(move || Ok(bcrypt::verify(password, &hash).unwrap_or(false)))
            .await?;
        Ok(matches && known && acceptable)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_until(tokio::time::Instant::now() + self.queue_timeout, work)
            .await
    }

    async fn run_until<T: Send + 'static>(
        &self,
        deadline: tokio::time::Instant,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .context("hashing semaphore closed")?;
        let (done, result) = oneshot::channel();
        self.pool.spawn(move || {
            let _permit = permit;
            // The request may have gone; then nobody wants the answer.
            let _ = done.send(work());
        });
        Ok(result.await.context("hashing task failed")??)
    }
}

fn busy() -> Error {
    Error::Unavailable("the server is busy checking passwords; try again shortly".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, queue_timeout: Duration) -> HashingLimits {
        HashingLimits {
            concurrency,
            new_password_concurrency: 1,
            queue_timeout,
            priority: HashingPriority::Idle,
        }
    }

    async fn passwords() -> Passwords {
        Passwords::new(4, limits(2, Duration::from_secs(5)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let passwords = passwords().await;
        let password = NewPassword::parse("correct horse".into()).unwrap();
        let hash = passwords.hash(&password).await.unwrap();
        assert!(!hash.contains("correct horse"));
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            passwords
                .verify("correct horse", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong horse", Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_account_never_matches() {
        let passwords = passwords().await;
        assert!(!passwords.verify("anything at all", None).await.unwrap());
    }

    #[tokio::test]
    async fn a_72_byte_password_is_not_a_prefix_match() {
        let passwords = passwords().await;
        let long = "a".repeat(72);
        let hash = passwords
            .hash(&NewPassword::parse(long.clone()).unwrap())
            .await
            .unwrap();
        assert!(passwords.verify(&long, Some(&hash)).await.unwrap());
        assert!(
            !passwords
                .verify(&"a".repeat(71), Some(&hash))
                .await
                .unwrap()
        );
        // bcrypt alone would accept this one (it reads 72 bytes).
        assert!(
            !passwords
                .verify(&"a".repeat(73), Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_unavailable() {
        let passwords = Passwords::new(4, limits(1, Duration::from_millis(50)))
            .await
            .unwrap();
        let _held = passwords.slots.clone().acquire_owned().await.unwrap();
        let error = passwords.verify("whatever1", None).await.unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }

    #[tokio::test]
    async fn new_passwords_wait_among_themselves_and_logins_overtake_them() {
        let passwords = Passwords::new(4, limits(2, Duration::from_millis(50)))
            .await
            .unwrap();
        // One registration holds the share of new passwords...
        let _registering = passwords
            .new_password_permits
            .clone()
            .acquire_owned()
            .await
            .unwrap();
        let password = NewPassword::parse("correct horse".into()).unwrap();
        let error = passwords.hash(&password).await.unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        // ...while logins still find free slots.
        assert!(!passwords.verify("whatever1", None).await.unwrap());
    }
}
