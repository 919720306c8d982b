//! The rules of role changes, as pure functions of the accounts involved.

use super::Actor;
use crate::{
    db::models::{Role, User},
    error::{Error, Result},
};

/// What a role change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// The account became an admin.
    Granted,
    /// The account stopped being an admin.
    Revoked,
    /// The account had the role already.
    Unchanged,
}

/// Enabled administrators among `admins`.
pub fn enabled_admins(admins: &[User]) -> usize {
    admins
        .iter()
        .filter(|admin| admin.disabled_at.is_none())
        .count()
}

/// An admin acting through the AdminService must still be one (the role
/// may have been taken away since the request was authenticated).
pub fn still_an_admin(actor_id: i64, admins: &[User]) -> Result<()> {
    if admins
        .iter()
        .any(|admin| admin.id == actor_id && admin.disabled_at.is_none())
    {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "this needs an administrator account (role admin)".into(),
        ))
    }
}

/// Judges giving `target` the role `role`. An admin may not leave the
/// service without an enabled administrator (which only demoting oneself,
/// as the last one, would do): the AdminService would be closed to everyone
/// until the operator steps in. The operator may, being able to grant again.
pub fn judge_role_change(
    actor: Actor,
    target: &User,
    role: Role,
    admins: &[User],
) -> Result<RoleChange> {
    let is_admin = admins.iter().any(|admin| admin.id == target.id);
    match (role, is_admin) {
        (Role::Admin, true) | (Role::User, false) => Ok(RoleChange::Unchanged),
        (Role::Admin, false) => Ok(RoleChange::Granted),
        (Role::User, true) => {
            let others = admins
                .iter()
                .filter(|admin| admin.id != target.id && admin.disabled_at.is_none())
                .count();
            if others == 0 && matches!(actor, Actor::Admin(_)) {
                return Err(Error::FailedPrecondition(
                    "that would leave no enabled administrator; make another account an \
                     administrator first"
                        .into(),
                ));
            }
            Ok(RoleChange::Revoked)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::db::models::{ROLE_ADMIN, ROLE_USER};

    fn account(id: i64, role: &str) -> User {
        let created_at = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        User {
            id,
            email: format!("user{id}@example.test"),
            name: format!("User {id}"),
            password_hash: "$2b$04$hash".into(),
            account_type: "individual".into(),
            role: role.into(),
            disabled_at: None,
            created_at,
        }
    }

    fn disabled(user: User) -> User {
        User {
            disabled_at: Some(Utc::now()),
            ..user
        }
    }

    #[test]
    fn granting_and_revoking_change_only_what_differs() {
        let admin = account(1, ROLE_ADMIN);
        let user = account(2, ROLE_USER);
        let admins = [admin.clone()];
        let by = Actor::Admin(1);
        assert_eq!(
            judge_role_change(by, &user, Role::Admin, &admins).unwrap(),
            RoleChange::Granted
        );
        assert_eq!(
            judge_role_change(by, &user, Role::User, &admins).unwrap(),
            RoleChange::Unchanged
        );
        assert_eq!(
            judge_role_change(by, &admin, Role::Admin, &admins).unwrap(),
            RoleChange::Unchanged
        );
    }

    #[test]
    fn the_last_enabled_admin_cannot_demote_themself_but_the_operator_can() {
        let last = account(1, ROLE_ADMIN);
        let retired = disabled(account(3, ROLE_ADMIN));
        let admins = [last.clone(), retired];
        let error = judge_role_change(Actor::Admin(1), &last, Role::User, &admins).unwrap_err();
        assert!(matches!(error, Error::FailedPrecondition(_)), "{error:?}");
        assert_eq!(
            judge_role_change(Actor::Operator, &last, Role::User, &admins).unwrap(),
            RoleChange::Revoked
        );
    }

    #[test]
    fn an_admin_may_step_down_while_another_remains() {
        let one = account(1, ROLE_ADMIN);
        let two = account(2, ROLE_ADMIN);
        let admins = [one.clone(), two.clone()];
        assert_eq!(
            judge_role_change(Actor::Admin(1), &one, Role::User, &admins).unwrap(),
            RoleChange::Revoked
        );
        assert_eq!(
            judge_role_change(Actor::Admin(1), &two, Role::User, &admins).unwrap(),
            RoleChange::Revoked
        );
        assert_eq!(enabled_admins(&admins), 2);
    }

    #[test]
    fn a_demoted_or_disabled_admin_can_no_longer_act() {
        let admins = [account(1, ROLE_ADMIN), disabled(account(2, ROLE_ADMIN))];
        assert!(still_an_admin(1, &admins).is_ok());
        assert!(still_an_admin(2, &admins).is_err());
        assert!(still_an_admin(3, &admins).is_err());
    }
}
