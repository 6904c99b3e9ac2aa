//! Errors of the verifier and how each one looks over HTTP:
//! `{"error": {"code": "...", "message": "..."}}` with a stable kebab-case `code`.
//!
//! A *refused sign-in* is not an error: it is an answer (`answerCorrect: false`, or
//! `"verified": false`). These are the cases where no answer could be given: a malformed
//! request, a missing token, a dependency that failed. For a Cognito trigger an error fails
//! the sign-in, so an error can never turn into a success.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use facegate_shared::events::AuthFailureReason;
use facegate_shared::ids::IdError;

use crate::deadline::DeadlineExceeded;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("the access token was refused: {0}")]
    Token(crate::access_token::TokenError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the request is not a valid {expected}: {detail}")]
    InvalidRequest {
        expected: &'static str,
        detail: String,
    },
    #[error(transparent)]
    InvalidUserId(#[from] IdError),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{0} not found")]
    NotFound(String),
    /// Create was asked for a user Define would now refuse: locked by a concurrent sign-in's
    /// last wrong answer since Define said yes, or erased.
    #[error("user {user} cannot sign in: {reason:?}")]
    CannotSignIn {
        user: String,
        reason: AuthFailureReason,
    },
    #[error("{call} failed")]
    Dependency {
        call: &'static str,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
}

impl VerifierError {
    pub fn dependency(call: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Dependency {
            call,
            source: source.into(),
        }
    }

    pub fn invalid(expected: &'static str, detail: impl ToString) -> Self {
        Self::InvalidRequest {
            expected,
            detail: detail.to_string(),
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Token(e) => e.code(),
            Self::Forbidden(_) => "forbidden",
            Self::InvalidRequest { .. } => "invalid-request",
            Self::InvalidUserId(_) => "invalid-user-id",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::NotFound(_) => "not-found",
            Self::CannotSignIn { .. } => "cannot-sign-in",
            Self::Dependency { .. } => "dependency-failed",
            Self::Deadline(_) => "deadline-exceeded",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::InvalidRequest { .. } | Self::InvalidUserId(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::CannotSignIn { .. } => StatusCode::FORBIDDEN,
            Self::Dependency { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The JSON error body.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for VerifierError {
    fn into_response(self) -> Response {
        let detail = facegate_shared::report::chain(&self);
        if self.status().is_server_error() {
            tracing::error!(code = self.code(), error = %detail, "request failed");
        } else {
            tracing::info!(code = self.code(), error = %detail, "request refused");
        }
        // One sentence for the client; causes (SDK errors, key URLs) stay in the log.
        let message = match &self {
            Self::Token(e) if e.code() == "token-expired" => "the access token has expired".into(),
            Self::Token(e) if e.code() == "token-unverifiable" => {
                "the access token could not be checked now; try again".into()
            }
            Self::Token(_) => "the access token is not valid for this service".into(),
            e if e.status().is_server_error() => e.to_string(),
            _ => detail,
        };
        let mut response = (self.status(), Json(error_body(self.code(), &message))).into_response();
        if matches!(self, Self::Unauthorized | Self::Token(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
