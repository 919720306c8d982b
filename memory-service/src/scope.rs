//! Who a request acts for and until when: the [`RequestScope`] that every
//! database transaction of the request carries, so the caller's identity
//! and deadline reach PostgreSQL together.

use std::time::Duration;

use ninaivalaigal::{server::Deadline, token::AuthenticatedUser};
use tokio::time::Instant;
use tonic::Request;

use crate::error::Error;

/// Deadline of a request served without the server frame's layers (which
/// always set one): the frame's default request timeout.
const UNFRAMED_TIMEOUT: Duration = Duration::from_secs(30);

/// Most time kept back from the database for answering the client: a
/// statement cancelled this early still leaves time to roll back and send
/// DEADLINE_EXCEEDED before the frame gives up on the request.
const MAX_ANSWER_RESERVE: Duration = Duration::from_millis(100);

/// The caller and the deadline of one request.
#[derive(Clone, Debug)]
pub struct RequestScope {
    /// The caller, as the auth layer verified it.
    pub user: AuthenticatedUser,
    /// When the request must be answered.
    pub deadline: Deadline,
}

impl RequestScope {
    /// The scope of `request`. Without a verified caller (the service was
    /// served without the auth layer) nobody is let in.
    pub fn of<T>(request: &Request<T>) -> Result<Self, Error> {
        let user = request
            .extensions()
            .get::<AuthenticatedUser>()
            .cloned()
            .ok_or_else(|| Error::Unauthenticated("missing access token".into()))?;
        let deadline = request
            .extensions()
            .get::<Deadline>()
            .copied()
            .unwrap_or_else(|| Deadline(Instant::now() + UNFRAMED_TIMEOUT));
        Ok(Self { user, deadline })
    }

    /// How long one database statement of this request may run from now.
    pub fn statement_budget(&self) -> Duration {
        statement_budget(self.deadline.remaining())
    }
}

/// The time left minus a reserve for answering (a tenth of it, at most
/// [`MAX_ANSWER_RESERVE`]), and at least 1 ms: PostgreSQL reads 0 as "no
/// timeout".
fn statement_budget(remaining: Duration) -> Duration {
    let reserve = (remaining / 10).min(MAX_ANSWER_RESERVE);
    remaining
        .saturating_sub(reserve)
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_time_to_answer_and_never_means_no_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(statement_budget(Duration::from_secs(30)), ms(29_900));
        assert_eq!(statement_budget(ms(300)), ms(270));
        assert_eq!(statement_budget(ms(1)), ms(1));
        assert_eq!(statement_budget(Duration::ZERO), ms(1));
    }

    #[tokio::test]
    async fn a_scope_needs_a_caller_and_takes_the_deadline_of_the_request() {
        let mut request = Request::new(());
        assert!(matches!(
            RequestScope::of(&request),
            Err(Error::Unauthenticated(_))
        ));
        let user = AuthenticatedUser {
            user_id: 7,
            session_id: uuid::Uuid::nil(),
            email: "a@example.test".into(),
            role: "user".into(),
            expires_at: 0,
        };
        request.extensions_mut().insert(user);
        let unframed = RequestScope::of(&request).unwrap();
        assert!(unframed.deadline.remaining() > Duration::from_secs(29));
        let deadline = Deadline(Instant::now() + Duration::from_millis(500));
        request.extensions_mut().insert(deadline);
        let scope = RequestScope::of(&request).unwrap();
        assert_eq!(scope.user.user_id, 7);
        assert_eq!(scope.deadline, deadline);
        assert!(scope.statement_budget() <= Duration::from_millis(450));
    }
}
