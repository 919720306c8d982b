//! What the auth-service counts beyond the server frame's RPC metrics:
//! failed logins by reason, and attempts refused by the throttles. The
//! reasons are a fixed set, never the email or the client's address.

use ninaivalaigal::metrics::{Counter, Metrics};

use crate::sessions::LoginRefusal;

const LOGIN_FAILURES: &str = "ninaivalaigal_login_failures_total";
const THROTTLED: &str = "ninaivalaigal_throttled_total";

/// The auth-service's own counters.
pub struct AuthMetrics {
    wrong_password: Counter,
    unknown_email: Counter,
    account_disabled: Counter,
    login_throttled: Counter,
    registration_throttled: Counter,
}

impl AuthMetrics {
    /// Registers the counters in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        metrics.describe(
            LOGIN_FAILURES,
            "Logins whose password was checked and refused, by reason: wrong_password, unknown_email, account_disabled.",
        );
        metrics.describe(
            THROTTLED,
            "Attempts refused by a throttle (RESOURCE_EXHAUSTED) before any password was checked, by kind: login, registration.",
        );
        let failure = |reason| metrics.counter(LOGIN_FAILURES, &[("reason", reason)]);
        let throttled = |kind| metrics.counter(THROTTLED, &[("attempt", kind)]);
        Self {
            wrong_password: failure("wrong_password"),
            unknown_email: failure("unknown_email"),
            account_disabled: failure("account_disabled"),
            login_throttled: throttled("login"),
            registration_throttled: throttled("registration"),
        }
    }

    /// Counts a refused login; `account_exists` tells a wrong password from
    /// an unknown email (which the client is never told).
    pub fn login_refused(&self, refusal: LoginRefusal, account_exists: bool) {
        match refusal {
            LoginRefusal::AccountDisabled => &self.account_disabled,
            LoginRefusal::BadCredentials if account_exists => &self.wrong_password,
            LoginRefusal::BadCredentials => &self.unknown_email,
        }
        .increment(1);
    }

    /// Counts a login refused by the throttle.
    pub fn login_throttled(&self) {
        self.login_throttled.increment(1);
    }

    /// Counts a registration refused by the throttle.
    pub fn registration_throttled(&self) {
        self.registration_throttled.increment(1);
    }
}
