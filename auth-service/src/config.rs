//! Typed settings of the auth-service, from `NINAIVALAIGAL_*` environment
//! variables or the matching flags (`auth-service --help`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ninaivalaigal::{
    db::DatabaseSettings, server::TransportSettings, telemetry::LogSettings, token::JwtSettings,
};

/// Ninaivalaigal auth-service: registers users, logs them in, issues tokens.
///
/// Exactly one of `NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE` (Ed25519, recommended:
/// other services only ever hold the public key) and `NINAIVALAIGAL_JWT_SECRET`
/// (HS256 with a shared secret) must be set.
#[derive(Clone, Debug, clap::Parser)]
#[command(version)]
pub struct Settings {
    /// Address to serve gRPC on.
    #[arg(long, env = "NINAIVALAIGAL_AUTH_LISTEN_ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], ninaivalaigal::DEFAULT_AUTH_PORT)))]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub transport: TransportSettings,

    #[command(flatten)]
    pub jwt: JwtSettings,

    #[command(flatten)]
    pub log: LogSettings,

    /// PEM file with the PKCS#8 Ed25519 private key that signs access tokens
    /// (`openssl genpkey -algorithm ed25519`). Its public key is served by GetJwks.
    #[arg(long, env = "NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,

    /// Comma-separated PEM files with the public keys of previous signing keys,
    /// still published by GetJwks during a key rotation so that tokens they
    /// signed keep verifying until they expire.
    #[arg(
        long,
        env = "NINAIVALAIGAL_JWT_PUBLIC_KEY_FILES",
        value_delimiter = ','
    )]
    pub jwt_public_key_files: Vec<PathBuf>,

    /// Lifetime of access tokens, in hours.
    #[arg(
        long,
        env = "NINAIVALAIGAL_JWT_EXPIRATION_HOURS",
        default_value_t = 168
    )]
    pub jwt_expiration_hours: u64,

    /// Lifetime of a refresh token, in days; each refresh issues a new one
    /// with a fresh lifetime, so an unused session ends after this long.
    #[arg(long, env = "NINAIVALAIGAL_REFRESH_TOKEN_DAYS", default_value_t = 30)]
    pub refresh_token_days: u64,

    /// bcrypt cost factor for new password hashes (4 to 31; each step doubles the work).
    #[arg(long, env = "NINAIVALAIGAL_BCRYPT_COST", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// How many bcrypt computations may run at once (default: half the CPUs,
    /// at least one), so a burst of logins leaves CPU for other requests.
    #[arg(long, env = "NINAIVALAIGAL_HASHING_CONCURRENCY")]
    pub hashing_concurrency: Option<usize>,

    /// Seconds a login may wait for a free hashing slot before it is answered
    /// UNAVAILABLE.
    #[arg(
        long,
        env = "NINAIVALAIGAL_HASHING_QUEUE_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub hashing_queue_timeout_seconds: u64,

    /// Failed logins allowed per account in a burst before further attempts
    /// are refused with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "NINAIVALAIGAL_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub login_failures_per_account: u32,

    /// Failed logins allowed per client IP address in a burst.
    #[arg(
        long,
        env = "NINAIVALAIGAL_LOGIN_FAILURES_PER_CLIENT",
        default_value_t = 20
    )]
    pub login_failures_per_client: u32,

    /// Seconds after which one counted failure is forgotten (the rate at which
    /// a throttled account or address may try again).
    #[arg(
        long,
        env = "NINAIVALAIGAL_LOGIN_FAILURE_RECOVERY_SECONDS",
        default_value_t = 60
    )]
    pub login_failure_recovery_seconds: u64,

    /// Comma-separated emails of administrators: these accounts get the admin
    /// role when they register, and existing ones are promoted at start-up.
    #[arg(long, env = "NINAIVALAIGAL_ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,
}

impl Settings {
    /// Lifetime of access tokens.
    pub fn access_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.jwt_expiration_hours.saturating_mul(3600))
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.refresh_token_days.saturating_mul(86_400))
    }

    /// Clock leeway for token checks.
    pub fn jwt_leeway(&self) -> Duration {
        self.jwt.leeway()
    }

    /// Bcrypt concurrency, defaulting to half the CPUs.
    pub fn hashing_concurrency(&self) -> usize {
        self.hashing_concurrency
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |cpus| cpus.get() / 2)
            })
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ninaivalaigal::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

    use super::*;

    fn parse(extra: &[&str]) -> Result<Settings, clap::Error> {
        let mut args = vec!["auth-service", "--database-url=postgres://u:p@h/db"];
        args.extend_from_slice(extra);
        Settings::try_parse_from(args)
    }

    #[test]
    fn defaults() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.jwt_expiration_hours, 168);
        assert_eq!(settings.bcrypt_cost, 12);
        assert_eq!(settings.jwt.issuer, DEFAULT_ISSUER);
        assert_eq!(settings.jwt.audience, DEFAULT_AUDIENCE);
        assert!(settings.hashing_concurrency() >= 1);
    }

    #[test]
    fn secret_is_hidden_and_must_be_long() {
        let secret = "s".repeat(40);
        let settings = parse(&[&format!("--jwt-secret={secret}")]).unwrap();
        assert!(!format!("{settings:?}").contains(&secret));
        assert!(parse(&["--jwt-secret=short"]).is_err());
    }

    #[test]
    fn bcrypt_cost_is_bounded() {
        assert!(parse(&["--bcrypt-cost=3"]).is_err());
        assert!(parse(&["--bcrypt-cost=32"]).is_err());
        assert_eq!(parse(&["--bcrypt-cost=4"]).unwrap().bcrypt_cost, 4);
    }

    #[test]
    fn lists_are_comma_separated() {
        let settings = parse(&["--admin-emails=a@x.test,b@x.test"]).unwrap();
        assert_eq!(settings.admin_emails, ["a@x.test", "b@x.test"]);
    }
}
