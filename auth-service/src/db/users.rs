//! Queries on accounts.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, result::DatabaseErrorKind};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ninaivalaigal::schema::users;

use super::models::{NewUser, ROLE_ADMIN, Role, User};
use crate::error::{Error, Result};

/// Creates an account; ALREADY_EXISTS when the email is taken.
pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> Result<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|error| match error {
            diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::AlreadyExists(format!(
                    "an account with email {} exists already; log in instead",
                    new.email
                ))
            }
            // The table insists on lower(btrim(email)); should Postgres's
            // idea of lower case ever differ from Rust's, say so plainly.
            diesel::result::Error::DatabaseError(DatabaseErrorKind::CheckViolation, _) => {
                Error::InvalidArgument(format!(
                    "email {} cannot be stored in normalized form; use another address",
                    new.email
                ))
            }
            other => other.into(),
        })
}

/// The account with this (normalized) email, if any.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The account with this email, locked against concurrent changes until the
/// transaction ends. Admin actions take this lock first, so a concurrent
/// login either finishes before them (and its session is revoked with the
/// rest) or sees their result.
pub async fn find_by_email_for_update(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> Result<Option<User>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// The account with this id, share-locked until the transaction ends: a
/// login holds it while it opens a session, so the account cannot be
/// disabled or deleted in between unnoticed.
pub async fn find_by_id_for_share(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<User>> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .for_share()
        .first(conn)
        .await
        .optional()?)
}

/// The account with this id, locked until the transaction ends (an
/// erasure holds it, so no login can open a session meanwhile).
pub async fn find_by_id_for_update(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<User>> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// The account with this id, if any.
pub async fn find_by_id(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<User>> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Up to `limit` accounts with an id above `after`, oldest first.
pub async fn page(conn: &mut AsyncPgConnection, after: i64, limit: i64) -> Result<Vec<User>> {
    Ok(users::table
        .filter(users::id.gt(after))
        .order(users::id.asc())
        .limit(limit)
        .select(User::as_select())
        .load(conn)
        .await?)
}

/// Every admin account, locked until the transaction ends, in id order
/// (so concurrent role changes take the locks in the same order). Role
/// changes take these locks first, so two of them cannot both count an
/// admin that the other is demoting.
pub async fn lock_admins(conn: &mut AsyncPgConnection) -> Result<Vec<User>> {
    Ok(users::table
        .filter(users::role.eq(ROLE_ADMIN))
        .order(users::id.asc())
        .select(User::as_select())
        .for_update()
        .load(conn)
        .await?)
}

/// Sets an account's role and returns it.
pub async fn set_role(conn: &mut AsyncPgConnection, id: i64, role: Role) -> Result<User> {
    Ok(diesel::update(users::table.find(id))
        .set(users::role.eq(role.as_str()))
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}

/// Marks the account disabled (keeping the first time it was) and returns it.
pub async fn disable(conn: &mut AsyncPgConnection, id: i64, at: DateTime<Utc>) -> Result<User> {
    diesel::update(users::table.find(id).filter(users::disabled_at.is_null()))
        .set(users::disabled_at.eq(at))
        .execute(conn)
        .await?;
    find_by_id(conn, id)
        .await?
        .ok_or_else(|| Error::NotFound("the account no longer exists".into()))
}

/// Deletes the account; its sessions, refresh tokens, contexts and memories
/// go with it (ON DELETE CASCADE).
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> Result<bool> {
    Ok(diesel::delete(users::table.find(id)).execute(conn).await? > 0)
}
