//! The login throttle. A login takes one cell from its account's allowance
//! (keyed on the normalized email, so unknown emails are throttled exactly
//! like known ones) and one from its client's before its password is
//! checked; the cells come back only when the password was right (or was
//! never checked). So the allowance counts wrong passwords, and no number of
//! concurrent guesses gets more of them checked than the burst.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Context;

use super::KeyedLimiter;
use crate::client::ClientKey;

/// Login allowances per account (normalized email) and per client.
pub struct LoginThrottle {
    accounts: KeyedLimiter<String>,
    clients: KeyedLimiter<ClientKey>,
}

impl LoginThrottle {
    /// Allows bursts of `per_account` and `per_client` wrong passwords,
    /// forgiving one every `recovery`.
    pub fn new(per_account: u32, per_client: u32, recovery: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            accounts: KeyedLimiter::new(per_account, recovery)
                .context("NINAIVALAIGAL_LOGIN_FAILURES_PER_ACCOUNT")?,
            clients: KeyedLimiter::new(per_client, recovery)
                .context("NINAIVALAIGAL_LOGIN_FAILURES_PER_CLIENT")?,
        })
    }

    /// Takes this attempt's cells, or says how long to wait. Call it before
    /// the password is checked.
    pub fn reserve(
        &self,
        email: &str,
        client: Option<IpAddr>,
    ) -> Result<LoginReservation<'_>, Duration> {
        let now = Instant::now();
        let account = email.to_owned();
        let client = client.map(ClientKey::from);
        self.accounts.take(&account, now)?;
        if let Some(client) = &client
            && let Err(wait) = self.clients.take(client, now)
        {
            self.accounts.give_back(&account, now);
            return Err(wait);
        }
        Ok(LoginReservation {
            throttle: self,
            account,
            client,
        })
    }

    /// Drops the state of keys that have recovered; call it now and then.
    pub fn prune(&self) {
        let now = Instant::now();
        self.accounts.prune(now);
        self.clients.prune(now);
    }
}

/// The cells one login attempt took. Dropping it keeps them: an attempt
/// counts unless it is shown harmless with [`LoginReservation::give_back`].
#[must_use = "drop it to count the attempt, or give it back"]
pub struct LoginReservation<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    client: Option<ClientKey>,
}

impl LoginReservation<'_> {
    /// Returns the cells: the password was right, or was never checked.
    pub fn give_back(self) {
        let now = Instant::now();
        self.throttle.accounts.give_back(&self.account, now);
        if let Some(client) = &self.client {
            self.throttle.clients.give_back(client, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn an_account_is_limited_after_its_burst_and_others_are_not() {
        let throttle = LoginThrottle::new(3, 100, HOUR).unwrap();
        for _ in 0..3 {
            drop(throttle.reserve("a@x.test", ip("192.0.2.1")).unwrap());
        }
        let wait = throttle.reserve("a@x.test", ip("192.0.2.1")).err().unwrap();
        assert!(wait > HOUR - Duration::from_secs(5) && wait <= HOUR);
        assert!(throttle.reserve("b@x.test", ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn reservations_are_taken_before_any_outcome_is_known() {
        // Twenty attempts in flight at once: only the burst gets cells.
        let throttle = LoginThrottle::new(5, 100, HOUR).unwrap();
        let held: Vec<_> = (0..20)
            .filter_map(|_| throttle.reserve("a@x.test", ip("192.0.2.1")).ok())
            .collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn a_right_password_gives_its_cells_back() {
        let throttle = LoginThrottle::new(2, 2, HOUR).unwrap();
        for _ in 0..10 {
            throttle
                .reserve("a@x.test", ip("192.0.2.1"))
                .unwrap()
                .give_back();
        }
        drop(throttle.reserve("a@x.test", ip("192.0.2.1")).unwrap());
        drop(throttle.reserve("a@x.test", ip("192.0.2.1")).unwrap());
        assert!(throttle.reserve("a@x.test", ip("192.0.2.1")).is_err());
    }

    #[test]
    fn a_client_is_limited_across_accounts_and_keeps_no_account_cell() {
        let throttle = LoginThrottle::new(1, 2, HOUR).unwrap();
        drop(throttle.reserve("a@x.test", ip("192.0.2.1")).unwrap());
        drop(throttle.reserve("b@x.test", ip("192.0.2.1")).unwrap());
        assert!(throttle.reserve("c@x.test", ip("192.0.2.1")).is_err());
        // The refused attempt took nothing from c's own allowance.
        assert!(throttle.reserve("c@x.test", ip("198.51.100.1")).is_ok());
    }

    #[test]
    fn rotating_through_an_ipv6_64_is_one_client() {
        let throttle = LoginThrottle::new(100, 2, HOUR).unwrap();
        drop(throttle.reserve("a@x.test", ip("2001:db8:0:1::1")).unwrap());
        drop(throttle.reserve("b@x.test", ip("2001:db8:0:1::2")).unwrap());
        assert!(
            throttle
                .reserve("c@x.test", ip("2001:db8:0:1:ffff::3"))
                .is_err()
        );
        assert!(throttle.reserve("c@x.test", ip("2001:db8:0:2::1")).is_ok());
    }

    #[test]
    fn a_limit_ends() {
        let throttle = LoginThrottle::new(1, 100, Duration::from_millis(20)).unwrap();
        drop(throttle.reserve("a@x.test", None).unwrap());
        assert!(throttle.reserve("a@x.test", None).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(throttle.reserve("a@x.test", None).is_ok());
        throttle.prune();
    }

    #[test]
    fn zero_limits_are_refused_naming_the_setting() {
        let error = LoginThrottle::new(0, 1, HOUR).err().unwrap();
        assert!(format!("{error:#}").contains("NINAIVALAIGAL_LOGIN_FAILURES_PER_ACCOUNT"));
        assert!(LoginThrottle::new(1, 1, Duration::ZERO).is_err());
    }
}
