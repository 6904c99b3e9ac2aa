//! Who is calling: the app's server, or a person with their own Cognito access token.
//!
//! - The app bearer token (`FACEGATE_VERIFIER_TOKEN`), compared in constant time (`subtle`, so
//!   the time a refusal takes says nothing about how much of a guess was right), may call
//!   every route: the Cognito triggers over HTTP, `/v1/verify`, and any user's data.
//! - A Cognito access token ([`crate::access_token`]) makes the caller that person: they may
//!   get an upload URL for their own face, read their own registration state and erase
//!   themselves, and nothing else.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facegate_shared::ids::UserId;
use subtle::ConstantTimeEq;

use crate::access_token::AccessTokens;
use crate::error::VerifierError;

/// The caller of a request, put in its extensions by [`authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The app's server, holding the bearer token.
    App,
    /// A person, by their access token.
    Person(UserId),
}

impl Caller {
    /// Whether this caller may act on `user`'s data.
    pub fn may_act_for(&self, user: &UserId) -> Result<(), VerifierError> {
        match self {
            Caller::App => Ok(()),
            Caller::Person(me) if me == user => Ok(()),
            Caller::Person(_) => Err(VerifierError::Forbidden(
                "an access token only reaches its own user's data",
            )),
        }
    }
}

/// What [`authenticate`] checks against.
#[derive(Clone)]
pub struct Guard {
    pub app_token: Arc<str>,
    /// `None` when the stack has no user pool: then only the app token is accepted.
    pub people: Option<AccessTokens>,
}

/// Whether `given` is the app token.
pub fn is_app_token(given: &[u8], expected: &str) -> bool {
    // ct_eq of slices of different lengths is false (length is not a secret worth hiding).
    bool::from(given.ct_eq(expected.as_bytes()))
}

fn bearer(header: Option<&[u8]>) -> Option<&[u8]> {
    header.and_then(|h| h.strip_prefix(b"Bearer "))
}

/// Every API route: an app token or a valid access token, or 401.
pub async fn authenticate(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let Some(given) = bearer(header) else {
        return VerifierError::Unauthorized.into_response();
    };
    let caller = if is_app_token(given, &guard.app_token) {
        Caller::App
    } else {
        let (Some(people), Ok(token)) = (&guard.people, std::str::from_utf8(given)) else {
            return VerifierError::Unauthorized.into_response();
        };
        if token.split('.').count() != 3 {
            return VerifierError::Unauthorized.into_response();
        }
        match people.check(token).await {
            Ok(user) => Caller::Person(user),
            Err(e) => return VerifierError::Token(e).into_response(),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The routes only the app's server may call (the triggers, `/v1/verify`).
pub async fn require_app(request: Request, next: Next) -> Response {
    match request.extensions().get::<Caller>() {
        Some(Caller::App) => next.run(request).await,
        _ => VerifierError::Forbidden("this route takes the app's bearer token").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let app = |h: &[u8]| bearer(Some(h)).is_some_and(|t| is_app_token(t, "s3cret"));
        assert!(app(b"Bearer s3cret"));
        assert!(!app(b"Bearer s3cre"));
        assert!(!app(b"Bearer s3cret "));
        assert!(!app(b"bearer s3cret"));
        assert!(!app(b"s3cret"));
        assert!(bearer(None).is_none());
    }

    #[test]
    fn a_person_reaches_only_their_own_data() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        assert!(Caller::App.may_act_for(&bob).is_ok());
        assert!(Caller::Person(alice.clone()).may_act_for(&alice).is_ok());
        assert!(matches!(
            Caller::Person(alice).may_act_for(&bob),
            Err(VerifierError::Forbidden(_))
        ));
    }
}
