//! Who is an administrator. The role is given and taken only by someone who
//! holds power already: the operator, with database access
//! (`auth-service admin grant|revoke`), or an admin through
//! `AdminService.SetUserRole`. Registration never makes an admin. Every
//! change is audited with who acted.

pub mod command;
mod rules;

use std::net::IpAddr;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;

use crate::{
    audit::{AuditEvent, Event},
    db::{
        self,
        models::{Role, User},
    },
    error::{Error, Result},
    input::Email,
};

pub use rules::RoleChange;

/// Who changes a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The operator command, run with the service's database access.
    Operator,
    /// An administrator, by account id, through the AdminService.
    Admin(i64),
}

/// What a role change did.
#[derive(Debug)]
pub struct RoleOutcome {
    /// The account, as it is now.
    pub user: User,
    /// Whether its role changed.
    pub change: RoleChange,
    /// How many enabled administrators there are now.
    pub enabled_admins: usize,
}

/// Gives the account with `email` the role `role`, on behalf of `actor`,
/// and audits the change (nothing is recorded when the account had the
/// role already).
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    email: &Email,
    role: Role,
    actor: Actor,
    client: Option<IpAddr>,
) -> Result<RoleOutcome> {
    conn.transaction(async |conn| {
        // Admins first, then the target: the same order in every role
        // change, and it serializes them.
        let admins = db::users::lock_admins(conn).await?;
        if let Actor::Admin(id) = actor {
            rules::still_an_admin(id, &admins)?;
        }
        let target = db::users::find_by_email_for_update(conn, email.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no account has email {email}")))?;
        let change = rules::judge_role_change(actor, &target, role, &admins)?;
        let (user, enabled_admins) = match change {
            RoleChange::Unchanged => (target, rules::enabled_admins(&admins)),
            RoleChange::Granted | RoleChange::Revoked => {
                let user = db::users::set_role(conn, target.id, role).await?;
                audit(conn, &user, change, actor, client).await?;
                let enabled = rules::enabled_admins(&admins);
                let enabled = match change {
                    RoleChange::Granted if user.disabled_at.is_none() => enabled + 1,
                    RoleChange::Revoked if user.disabled_at.is_none() => enabled - 1,
                    _ => enabled,
                };
                (user, enabled)
            }
        };
        Ok(RoleOutcome {
            user,
            change,
            enabled_admins,
        })
    })
    .await
}

async fn audit(
    conn: &mut AsyncPgConnection,
    user: &User,
    change: RoleChange,
    actor: Actor,
    client: Option<IpAddr>,
) -> Result<()> {
    let event = if change == RoleChange::Granted {
        Event::AdminRoleGranted
    } else {
        Event::AdminRoleRevoked
    };
    let mut record = AuditEvent::new(event, client)
        .user(user.id)
        .email(&user.email);
    record = match actor {
        Actor::Admin(id) => record.actor(id).detail(json!({ "by": "admin" })),
        // The operator has no account; the database role and the host's
        // user name are what is known of them (the name is informative, not
        // verified).
        Actor::Operator => record.detail(json!({
            "by": "operator_command",
            "os_user": std::env::var("USER").ok(),
        })),
    };
    record.record(conn).await
}
