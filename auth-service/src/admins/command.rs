//! `auth-service admin grant|revoke EMAIL`: the operator's way to make or
//! unmake administrators. It connects with the service's own database
//! settings (whoever can run it there holds the database password already)
//! and prints what it did.

use crate::{
    admins::{self, Actor, RoleChange},
    db::{self, models::Role},
    input::Email,
};
use ninaivalaigal::db::DatabaseSettings;

/// Operator commands on administrators.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Gives the account with EMAIL the admin role (it must have registered).
    Grant {
        /// Email address of the account.
        email: String,
    },
    /// Takes the admin role from the account with EMAIL.
    Revoke {
        /// Email address of the account.
        email: String,
    },
}

/// Runs `command` against the database; returns the line to print.
pub async fn run(command: &AdminCommand, database: &DatabaseSettings) -> anyhow::Result<String> {
    let (email, role) = match command {
        AdminCommand::Grant { email } => (email, Role::Admin),
        AdminCommand::Revoke { email } => (email, Role::User),
    };
    let email = Email::parse(email)?;
    let pool = database.pool()?;
    let mut conn = db::connection(&pool)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {error}", database.database_url))?;
    let outcome = admins::set_role(&mut conn, &email, role, Actor::Operator, None).await?;
    let user = &outcome.user;
    let admins = outcome.enabled_admins;
    Ok(match outcome.change {
        RoleChange::Granted => format!(
            "granted the admin role to {} (account {}); enabled administrators: {admins}",
            user.email, user.id
        ),
        RoleChange::Revoked => format!(
            "revoked the admin role of {} (account {}); enabled administrators: {admins}",
            user.email, user.id
        ),
        RoleChange::Unchanged => format!(
            "{} (account {}) already has role {}; nothing changed",
            user.email, user.id, user.role
        ),
    })
}
