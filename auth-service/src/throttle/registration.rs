//! The registration throttle: every registration a client asks for, whether
//! the email is new or taken, takes a cell of its allowance, so neither
//! account creation nor probing which emails exist can be done in bulk.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Context;

use super::KeyedLimiter;
use crate::client::ClientKey;

/// Registration allowances per client.
pub struct RegistrationThrottle {
    clients: KeyedLimiter<ClientKey>,
}

impl RegistrationThrottle {
    /// Allows bursts of `per_client` registrations, one more every `recovery`.
    pub fn new(per_client: u32, recovery: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            clients: KeyedLimiter::new(per_client, recovery)
                .context("NINAIVALAIGAL_REGISTRATIONS_PER_CLIENT")?,
        })
    }

    /// Counts a registration, or says how long the client must wait. A
    /// request without a client address (not over TCP) is not limited.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        match client {
            Some(client) => self.clients.take(&ClientKey::from(client), Instant::now()),
            None => Ok(()),
        }
    }

    /// Drops the state of clients that have recovered.
    pub fn prune(&self) {
        self.clients.prune(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_and_others_are_unaffected() {
        let throttle = RegistrationThrottle::new(2, Duration::from_secs(60)).unwrap();
        let home = Some("192.0.2.1".parse().unwrap());
        let v6 = Some("2001:db8::1".parse().unwrap());
        assert!(throttle.admit(home).is_ok());
        assert!(throttle.admit(home).is_ok());
        let wait = throttle.admit(home).unwrap_err();
        assert!(wait <= Duration::from_secs(60));
        assert!(throttle.admit(v6).is_ok());
        assert!(throttle.admit(None).is_ok());
    }
}
