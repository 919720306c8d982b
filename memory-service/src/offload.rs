//! CPU-heavy work (converting large JSON to and from `Struct`) off the
//! runtime's async workers, so that one big page does not stall every other
//! request on the same worker.

use crate::error::Error;

/// Work on more bytes than this runs on the blocking pool: converting 32 KiB
/// of JSON takes long enough (a few hundred microseconds) to matter to
/// other requests, while small work is cheaper than the hand-over.
pub const INLINE_LIMIT_BYTES: usize = 32 * 1024;

/// Runs `work`, which handles about `bytes` bytes, inline when small and on
/// tokio's blocking pool when large.
pub async fn cpu_bound<R, F>(bytes: usize, work: F) -> Result<R, Error>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    if bytes <= INLINE_LIMIT_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(format!("offloaded conversion failed: {error}")))
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn large_work_leaves_the_runtime_thread_and_small_work_stays() {
        let runtime_thread = thread::current().id();
        let small = cpu_bound(INLINE_LIMIT_BYTES, || thread::current().id())
            .await
            .unwrap();
        assert_eq!(small, runtime_thread);
        let large = cpu_bound(INLINE_LIMIT_BYTES + 1, || thread::current().id())
            .await
            .unwrap();
        assert_ne!(large, runtime_thread);
    }

    #[tokio::test]
    async fn a_panic_in_offloaded_work_is_an_internal_error() {
        let result: Result<(), Error> =
            cpu_bound(INLINE_LIMIT_BYTES + 1, || panic!("conversion bug")).await;
        assert!(matches!(result, Err(Error::Internal(_))));
    }
}
