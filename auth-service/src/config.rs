//! Typed settings of the auth-service, from `NINAIVALAIGAL_*` environment
//! variables or the matching flags (`auth-service --help`), and the
//! operator's subcommands.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use ninaivalaigal::{
    db::DatabaseSettings,
    server::{MetricsSettings, TransportSettings},
    settings::Seconds,
    telemetry::LogSettings,
    token::JwtSettings,
};

use crate::{admins::command::AdminCommand, client::Cidr, hashing_priority::HashingPriority};

/// Settings that are no longer read, and what to do instead. Start-up
/// refuses to run while one is set, so that nobody silently loses what it
/// used to do.
const RETIRED_VARIABLES: &[(&str, &str)] = &[(
    "NINAIVALAIGAL_ADMIN_EMAILS",
    "registration no longer makes administrators; unset it and grant the role with \
     `auth-service admin grant EMAIL`",
)];

/// Ninaivalaigal auth-service: registers users, logs them in, issues tokens.
///
/// Without a subcommand it serves. Exactly one of
/// `NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE` (Ed25519, recommended: other services
/// only ever hold the public key) and `NINAIVALAIGAL_JWT_SECRET` (HS256 with
/// a shared secret) must be set.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "auth-service", version)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does instead of serving.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Grant or revoke the admin role, directly in the database (with the
    /// service's own NINAIVALAIGAL_DATABASE_URL); prints what it did.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Refuses to start while a retired variable is set (`lookup` reads the
/// environment), with one line that says what to do instead.
pub fn refuse_retired_variables(lookup: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<()> {
    for (name, instead) in RETIRED_VARIABLES {
        if lookup(name).is_some() {
            anyhow::bail!("{name} is set, but {instead}");
        }
    }
    Ok(())
}

/// Settings of the serving auth-service.
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
    pub metrics: MetricsSettings,

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

    /// Scheduling of the password hashing threads: `idle` (Linux's
    /// SCHED_IDLE: bcrypt gets only CPU time nothing else wants, so a login
    /// flood slows logins, not other requests) or a nice value from 0 to 19
    /// (bcrypt gets a share of a busy CPU; 0 keeps the process's priority).
    #[arg(long, env = "NINAIVALAIGAL_HASHING_PRIORITY", default_value_t = HashingPriority::Idle)]
    pub hashing_priority: HashingPriority,

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

    /// Comma-separated networks (CIDR, or single addresses) of reverse
    /// proxies whose `x-forwarded-for` header names the client, e.g.
    /// `10.0.0.0/8,127.0.0.1/32`. From any other peer the header is ignored.
    #[arg(long, env = "NINAIVALAIGAL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Registrations allowed per client (IPv4 address or IPv6 /64) in a
    /// burst, whether the email is new or taken.
    #[arg(
        long,
        env = "NINAIVALAIGAL_REGISTRATIONS_PER_CLIENT",
        default_value_t = 10
    )]
    pub registrations_per_client: u32,

    /// Seconds after which a client may register once more after its burst.
    #[arg(
        long,
        env = "NINAIVALAIGAL_REGISTRATION_RECOVERY_SECONDS",
        default_value_t = 60
    )]
    pub registration_recovery_seconds: u64,

    /// How many of the hashing slots registrations may hold or wait for at
    /// once (default: half of NINAIVALAIGAL_HASHING_CONCURRENCY, at least
    /// one), so a flood of registrations cannot starve logins.
    #[arg(long, env = "NINAIVALAIGAL_REGISTRATION_HASHING_CONCURRENCY")]
    pub registration_hashing_concurrency: Option<usize>,

    /// Audit rows per minute for each kind of failure (failed login or
    /// refresh, throttled or refused request) from one client; further
    /// failures in that minute are counted into one `audit_suppressed` row.
    #[arg(
        long,
        env = "NINAIVALAIGAL_AUDIT_FAILURES_PER_MINUTE",
        default_value_t = 20
    )]
    pub audit_failures_per_minute: u32,

    /// Days audit rows are kept; housekeeping deletes older ones.
    #[arg(long, env = "NINAIVALAIGAL_AUDIT_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,

    /// Seconds between housekeeping rounds (throttle state, revocations,
    /// audit summaries and retention).
    #[arg(long, env = "NINAIVALAIGAL_HOUSEKEEPING_SECONDS", default_value = "60")]
    pub housekeeping_seconds: Seconds,
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

    /// Hashing slots registrations may take, defaulting to half the slots.
    pub fn registration_hashing_concurrency(&self) -> usize {
        self.registration_hashing_concurrency
            .unwrap_or_else(|| self.hashing_concurrency() / 2)
            .clamp(1, self.hashing_concurrency())
    }

    /// How long audit rows are kept.
    pub fn audit_retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.audit_retention_days))
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
        let settings = parse(&["--trusted-proxies=10.0.0.0/8,127.0.0.1"]).unwrap();
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert!(parse(&["--trusted-proxies=10.0.0.0/40"]).is_err());
        assert!(parse(&[]).unwrap().trusted_proxies.is_empty());
    }

    #[test]
    fn registrations_get_a_smaller_share_of_the_hashing_slots() {
        let settings = parse(&["--hashing-concurrency=8"]).unwrap();
        assert_eq!(settings.registration_hashing_concurrency(), 4);
        let settings = parse(&["--hashing-concurrency=1"]).unwrap();
        assert_eq!(settings.registration_hashing_concurrency(), 1);
        let settings = parse(&[
            "--hashing-concurrency=2",
            "--registration-hashing-concurrency=5",
        ])
        .unwrap();
        assert_eq!(settings.registration_hashing_concurrency(), 2);
    }

    #[test]
    fn admin_emails_are_gone_and_refused_at_start_up() {
        assert!(parse(&["--admin-emails=a@x.test"]).is_err());
        let error = refuse_retired_variables(|name| {
            (name == "NINAIVALAIGAL_ADMIN_EMAILS").then(|| "a@x.test".into())
        })
        .unwrap_err()
        .to_string();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("NINAIVALAIGAL_ADMIN_EMAILS"), "{error}");
        assert!(error.contains("auth-service admin grant"), "{error}");
        assert!(refuse_retired_variables(|_| None).is_ok());
    }

    #[test]
    fn the_operator_command_takes_the_service_settings() {
        let cli = Cli::try_parse_from([
            "auth-service",
            "--database-url=postgres://u:p@h/db",
            "admin",
            "grant",
            "ada@example.test",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Admin(AdminCommand::Grant { ref email })) if email == "ada@example.test"
        ));
        let cli =
            Cli::try_parse_from(["auth-service", "--database-url=postgres://u:p@h/db"]).unwrap();
        assert!(cli.command.is_none());
    }
}
