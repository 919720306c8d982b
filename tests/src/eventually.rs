//! Waiting for something that happens in the background (a revocation poll,
//! a key fetch, a readiness change), without sleeping a fixed time.

use std::{fmt, time::Duration};

use tokio::time::Instant;

/// The result of one attempt of [`eventually`]: done (with a value), or not
/// yet (with, when there is one, the reason to report if time runs out).
pub trait Outcome {
    /// What [`eventually`] returns once the attempt succeeds.
    type Value;
    /// `Ok(value)` when done; `Err(reason)` to try again.
    fn into_outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn into_outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: fmt::Debug> Outcome for Result<T, E> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.map_err(|error| Some(format!("{error:?}")))
    }
}

/// Runs `attempt` until it succeeds (`true`, `Some`, `Ok`) and returns its
/// value; panics naming `what` (and the last `Err`, if any) when `within`
/// has passed. Attempts start 10 ms apart and slow down to 200 ms apart.
///
/// ```ignore
/// let status = eventually("the revoked token is refused", Duration::from_secs(5), async || {
///     memory.context_names().await.err()
/// })
/// .await;
/// ```
pub async fn eventually<O: Outcome>(
    what: impl fmt::Display,
    within: Duration,
    mut attempt: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        let reason = match attempt().await.into_outcome() {
            Ok(value) => return value,
            Err(reason) => reason,
        };
        let now = Instant::now();
        if now >= deadline {
            match reason {
                Some(reason) => {
                    panic!("timed out after {within:?} waiting for {what}; last attempt: {reason}")
                }
                None => panic!("timed out after {within:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
