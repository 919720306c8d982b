//! Sessions: one per login, each a family of single-use refresh tokens.
//! Login opens one once the password is checked, Refresh swaps its refresh
//! token for the next (and revokes the session when a spent token comes
//! back), Logout ends it.
//!
//! The decisions are pure functions in `rules`; the other modules run them
//! against the database (queries in [`crate::db::sessions`]) and record the
//! audit trail. Outcomes are plain types, turned into the service's error
//! only by the caller.

#[cfg(test)]
mod fixtures;
mod issue;
mod login;
mod logout;
mod outcome;
mod refresh;
mod rules;

pub use issue::{IssuedSession, Issuer, open};
pub use login::{CheckedLogin, login};
pub use logout::{LogoutOf, logout};
pub use outcome::{LoginOutcome, LoginRefusal, LogoutOutcome, RefreshOutcome, RefreshRefusal};
pub use refresh::refresh;
