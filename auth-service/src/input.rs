//! Request fields checked at the edge into typed values: past this module,
//! an [`Email`] is normalized and a [`NewPassword`] meets the policy.

use std::fmt;

use ninaivalaigal::paging::{Cursor, PageLimits};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Longest accepted email address (RFC 5321 path limit).
const MAX_EMAIL_BYTES: usize = 254;
/// Longest accepted display name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes: bcrypt only reads this many, so a
/// longer one is refused rather than silently cut.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// An email address, trimmed and lower-cased, so that uniqueness is
/// case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalizes and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(Error::InvalidArgument("email is required".into()));
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(Error::InvalidArgument(format!(
                "email is longer than {MAX_EMAIL_BYTES} bytes"
            )));
        }
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(Error::InvalidArgument(
                "email must look like name@example.com".into(),
            ));
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: trimmed, non-empty, printable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Error::InvalidArgument("name is required".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::InvalidArgument(format!(
                "name is longer than {MAX_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(
                "name must not contain control characters".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 8 characters to 72 bytes, no NUL
/// (bcrypt reads its input as a C string). `Debug` hides it.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Checks `raw` against the policy.
    pub fn parse(raw: String) -> Result<Self, Error> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::InvalidArgument(format!(
                "password must have at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidArgument(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8); \
                 longer ones are refused rather than silently truncated"
            )));
        }
        if raw.contains('\0') {
            return Err(Error::InvalidArgument(
                "password must not contain NUL characters".into(),
            ));
        }
        Ok(Self(raw))
    }

    /// The password. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// A refresh token as a request carries it: trimmed, not empty. Whether it
/// is a live one is for [`crate::sessions`] to say.
pub fn refresh_token(raw: &str) -> Result<&str, Error> {
    let token = raw.trim();
    if token.is_empty() {
        return Err(Error::InvalidArgument("refresh_token is required".into()));
    }
    Ok(token)
}

/// ListUsers' page sizes: 50 by default, at most 500.
pub const USERS_PAGE_LIMITS: PageLimits = PageLimits::new(50, 500);

/// Where ListUsers continues: after the account with this id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersCursor {
    /// Id of the last account returned.
    pub after: i64,
}

impl Cursor for UsersCursor {
    const KIND: &'static str = "users";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in ["", "   ", "ada", "@example.com", "ada@", "a b@c.d", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Email::parse(&format!("{}@x.test", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_are_trimmed_and_required() {
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("a\nb").is_err());
    }

    #[test]
    fn password_policy_counts_characters_and_bytes() {
        assert!(NewPassword::parse("1234567".into()).is_err());
        assert!(NewPassword::parse("12345678".into()).is_ok());
        // Eight characters, sixteen bytes: long enough.
        assert!(NewPassword::parse("éééééééé".into()).is_ok());
        assert!(NewPassword::parse("a".repeat(72)).is_ok());
        assert!(NewPassword::parse("a".repeat(73)).is_err());
        // 36 two-byte characters = 72 bytes is fine; 37 is not.
        assert!(NewPassword::parse("é".repeat(36)).is_ok());
        assert!(NewPassword::parse("é".repeat(37)).is_err());
        assert!(NewPassword::parse("abcdefgh\0".into()).is_err());
        assert!(
            !format!("{:?}", NewPassword::parse("hunter22".into()).unwrap()).contains("hunter")
        );
    }
}
