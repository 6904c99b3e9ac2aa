//! The bearer token every route but health and metrics requires.
//!
//! Compared in constant time (`subtle`), so the time a refusal takes says nothing about how
//! much of a guess was right.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::VerifierError;

/// The expected token, shared by the middleware.
#[derive(Clone)]
pub struct BearerToken(pub std::sync::Arc<str>);

/// Whether `header` is `Bearer <expected>`.
pub fn authorized(header: Option<&[u8]>, expected: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
        return false;
    };
    // ct_eq of slices of different lengths is false (length is not a secret worth hiding).
    bool::from(given.ct_eq(expected.as_bytes()))
}

pub async fn require_token(
    State(token): State<BearerToken>,
    request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if !authorized(header, &token.0) {
        return VerifierError::Unauthorized.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(authorized(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cret "), "s3cret"));
        assert!(!authorized(Some(b"bearer s3cret"), "s3cret"));
        assert!(!authorized(Some(b"s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
