//! Throttling of failed logins, per account and per client address.
//!
//! Each failure takes one cell from a `governor` keyed limiter (GCRA: a burst
//! of N failures, then one more every recovery period). When a failure finds
//! no cell, the key is blocked until governor says a cell is back, and every
//! attempt before then is refused before its password is checked. Keys that
//! fail nothing are never limited, so other users are unaffected.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use anyhow::Context;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use parking_lot::Mutex;

/// Throttles failures of one kind of key.
struct FailureLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    blocked_until: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    fn new(burst: u32, recovery: Duration) -> anyhow::Result<Self> {
        let burst = NonZeroU32::new(burst).context("the failure burst must be at least 1")?;
        let quota = Quota::with_period(recovery)
            .context("the failure recovery period must be positive")?
            .allow_burst(burst);
        Ok(Self {
            limiter: RateLimiter::keyed(quota),
            blocked_until: Mutex::new(HashMap::new()),
        })
    }

    /// How long `key` must still wait, if it is blocked.
    fn blocked(&self, key: &K) -> Option<Duration> {
        let blocked = self.blocked_until.lock();
        let until = *blocked.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; returns the wait when `key` is now blocked.
    fn fail(&self, key: &K) -> Option<Duration> {
        let not_until = self.limiter.check_key(key).err()?;
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        let mut blocked = self.blocked_until.lock();
        blocked.insert(key.clone(), Instant::now() + wait);
        Some(wait)
    }

    /// Forgets keys whose state no longer matters.
    fn prune(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        self.blocked_until.lock().retain(|_, until| *until > now);
    }
}

/// Failed-login throttles for accounts (by normalized email) and client
/// addresses.
pub struct LoginThrottle {
    accounts: FailureLimiter<String>,
    clients: FailureLimiter<IpAddr>,
}

impl LoginThrottle {
    /// Allows bursts of `per_account` and `per_client` failures, forgetting
    /// one failure every `recovery`.
    pub fn new(per_account: u32, per_client: u32, recovery: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            accounts: FailureLimiter::new(per_account, recovery)
                .context("NINAIVALAIGAL_LOGIN_FAILURES_PER_ACCOUNT")?,
            clients: FailureLimiter::new(per_client, recovery)
                .context("NINAIVALAIGAL_LOGIN_FAILURES_PER_CLIENT")?,
        })
    }

    /// The wait before this login may be attempted, if it is throttled.
    pub fn check(&self, email: &str, client: Option<IpAddr>) -> Option<Duration> {
        let account = self.accounts.blocked(&email.to_owned());
        let client = client.and_then(|client| self.clients.blocked(&client));
        account.max(client)
    }

    /// Counts a failed login; returns the wait when it crossed a limit.
    pub fn record_failure(&self, email: &str, client: Option<IpAddr>) -> Option<Duration> {
        let account = self.accounts.fail(&email.to_owned());
        let client = client.and_then(|client| self.clients.fail(&client));
        account.max(client)
    }

    /// Drops state of keys that have recovered; call it now and then.
    pub fn prune(&self) {
        self.accounts.prune();
        self.clients.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn an_account_is_blocked_after_its_burst_and_others_are_not() {
        let throttle = LoginThrottle::new(3, 100, Duration::from_secs(60)).unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.check("a@x.test", HOME), None);
            assert_eq!(throttle.record_failure("a@x.test", HOME), None);
        }
        let wait = throttle.record_failure("a@x.test", HOME).unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(throttle.check("a@x.test", HOME).is_some());
        assert_eq!(throttle.check("b@x.test", HOME), None);
    }

    #[test]
    fn a_client_is_blocked_across_accounts() {
        let throttle = LoginThrottle::new(100, 2, Duration::from_secs(60)).unwrap();
        throttle.record_failure("a@x.test", HOME);
        throttle.record_failure("b@x.test", HOME);
        assert!(throttle.record_failure("c@x.test", HOME).is_some());
        assert!(throttle.check("d@x.test", HOME).is_some());
        let elsewhere = Some("192.0.2.1".parse().unwrap());
        assert_eq!(throttle.check("d@x.test", elsewhere), None);
    }

    #[test]
    fn a_block_ends() {
        let throttle = LoginThrottle::new(1, 100, Duration::from_millis(20)).unwrap();
        throttle.record_failure("a@x.test", None);
        assert!(throttle.record_failure("a@x.test", None).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.check("a@x.test", None), None);
        throttle.prune();
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(LoginThrottle::new(0, 1, Duration::from_secs(1)).is_err());
        assert!(LoginThrottle::new(1, 1, Duration::ZERO).is_err());
    }
}
