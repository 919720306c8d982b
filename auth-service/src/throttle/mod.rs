//! Throttles: of login attempts per account and per client, and of
//! registrations per client. Clients are counted by
//! [`ClientKey`](crate::client::ClientKey) (an IPv4 address or an IPv6 /64).
//!
//! Each throttle is a keyed GCRA (a burst of N, then one more every
//! recovery period). governor implements the same algorithm but cannot give
//! a cell back, and a login must take its cell *before* bcrypt (so that
//! concurrent guesses cannot all pass a check made before any of them is
//! counted) and return it when the password was right.

mod login;
mod registration;

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

use anyhow::Context;
use parking_lot::Mutex;

pub use login::{LoginReservation, LoginThrottle};
pub use registration::RegistrationThrottle;

/// A keyed GCRA: per key, the time at which its allowance will be full again
/// plus one period (the "theoretical arrival time"). Keys that take nothing
/// are never limited, so one key's attempts leave the others alone.
struct KeyedLimiter<K: Hash + Eq + Clone> {
    period: Duration,
    /// How far ahead of now a key's arrival time may run: burst × period.
    tolerance: Duration,
    arrivals: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    fn new(burst: u32, period: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(burst > 0, "the burst must be at least 1");
        anyhow::ensure!(!period.is_zero(), "the recovery period must be positive");
        let tolerance = period
            .checked_mul(burst)
            .context("the burst times the recovery period is too long")?;
        // Far beyond any useful setting, and keeps Instant arithmetic in range.
        anyhow::ensure!(
            tolerance <= Duration::from_secs(10 * 365 * 86_400),
            "the burst times the recovery period must be under ten years"
        );
        Ok(Self {
            period,
            tolerance,
            arrivals: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one cell for `key`, or says how long until one is free.
    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut arrivals = self.arrivals.lock();
        let arrival = arrivals.get(key).copied().unwrap_or(now).max(now) + self.period;
        let ahead = arrival - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        arrivals.insert(key.clone(), arrival);
        Ok(())
    }

    /// Returns a cell taken by `key`.
    fn give_back(&self, key: &K, now: Instant) {
        let mut arrivals = self.arrivals.lock();
        if let Some(arrival) = arrivals.get_mut(key) {
            *arrival = arrival.checked_sub(self.period).unwrap_or(now).max(now);
        }
    }

    /// Forgets keys whose allowance is full again.
    fn prune(&self, now: Instant) {
        self.arrivals.lock().retain(|_, arrival| *arrival > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.arrivals.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_period() {
        let limiter = KeyedLimiter::new(3, Duration::from_secs(60)).unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            limiter.take(&"a", start).unwrap();
        }
        assert_eq!(limiter.take(&"a", start), Err(Duration::from_secs(60)));
        assert_eq!(
            limiter.take(&"a", start + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        limiter.take(&"b", start).unwrap();
        limiter.take(&"a", start + Duration::from_secs(60)).unwrap();
        assert!(limiter.take(&"a", start + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_cell_given_back_can_be_taken_again() {
        let limiter = KeyedLimiter::new(1, Duration::from_secs(60)).unwrap();
        let now = Instant::now();
        limiter.take(&"a", now).unwrap();
        assert!(limiter.take(&"a", now).is_err());
        limiter.give_back(&"a", now);
        limiter.take(&"a", now).unwrap();
        // Giving back more than was taken never grows the burst.
        limiter.give_back(&"a", now);
        limiter.give_back(&"a", now);
        limiter.take(&"a", now).unwrap();
        assert!(limiter.take(&"a", now).is_err());
    }

    #[test]
    fn recovered_keys_are_pruned() {
        let limiter = KeyedLimiter::new(2, Duration::from_secs(1)).unwrap();
        let now = Instant::now();
        limiter.take(&"a", now).unwrap();
        limiter.take(&"b", now).unwrap();
        limiter.prune(now);
        assert_eq!(limiter.len(), 2);
        limiter.prune(now + Duration::from_secs(1));
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn zero_or_absurd_limits_are_refused() {
        assert!(KeyedLimiter::<u8>::new(0, Duration::from_secs(1)).is_err());
        assert!(KeyedLimiter::<u8>::new(1, Duration::ZERO).is_err());
        assert!(KeyedLimiter::<u8>::new(u32::MAX, Duration::from_secs(u64::MAX / 2)).is_err());
    }
}
