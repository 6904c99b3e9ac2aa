//! Rekognition's errors, as the AWS JSON 1.1 protocol sends them.
//!
//! An error is an HTTP status and a body `{"__type": "<Code>", "message": "..."}`; the SDK
//! turns the `__type` into the matching error variant (`InvalidParameterException` ...).
//! Rekognition answers every client error with 400 and its own failures with 500.
//!
//! A message is what Rekognition would say: one sentence, never a debug dump of an SDK error,
//! a file path or a model's complaint. Details that help an operator (the object store's
//! answer, the disk error) go to the log, not to the caller: [`ApiError::Internal`] carries
//! them but displays one fixed sentence, and [`public_message`] cuts whatever else slips
//! through to its first line.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::collection::StoreError;
use crate::face::ImageError;

/// Every error the engine answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing, malformed or out of range; or the image has no usable face
    /// where one is needed.
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidImageFormat(String),
    #[error("{0}")]
    ImageTooLarge(String),
    #[error("{0}")]
    InvalidS3Object(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceAlreadyExists(String),
    #[error("{0}")]
    InvalidPaginationToken(String),
    /// The body is not JSON, or a field has the wrong JSON type.
    #[error("{0}")]
    Serialization(String),
    /// An operation this engine does not implement (or no `X-Amz-Target` at all).
    #[error("{0}")]
    UnknownOperation(String),
    /// No `Authorization` header: an unsigned request.
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// An `Authorization` header that is not a complete Signature V4.
    #[error("{0}")]
    IncompleteSignature(String),
    /// Signed with an access key the engine does not know.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// Signed with the wrong secret, over other contents, or too long ago.
    #[error("{0}")]
    InvalidSignature(String),
    /// No liveness session of that id (or it has been forgotten).
    #[error("{0}")]
    SessionNotFound(String),
    /// Too many liveness sessions open at once.
    #[error("{0}")]
    LimitExceeded(String),
    /// Our fault, never the caller's: a disk or model failure. The string is the detail for
    /// the log; the caller only reads Rekognition's sentence.
    #[error("{INTERNAL_MESSAGE}")]
    Internal(String),
}

/// What Rekognition answers for its own failures.
pub const INTERNAL_MESSAGE: &str =
    "Amazon Rekognition experienced a service issue. Try your call again.";

/// The longest message sent to a caller: Rekognition's are one short sentence.
const MAX_MESSAGE_CHARS: usize = 300;

/// `message` as a caller may see it: its first line, at most [`MAX_MESSAGE_CHARS`] characters,
/// so no multi-line dump ever leaves the engine even if a detail reaches a message by mistake.
pub fn public_message(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => line[..cut].trim_end().to_string(),
        None => line.to_string(),
    }
}

impl ApiError {
    /// The `__type` Rekognition (or the AWS JSON protocol) uses for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter(_) => "InvalidParameterException",
            ApiError::InvalidImageFormat(_) => "InvalidImageFormatException",
            ApiError::ImageTooLarge(_) => "ImageTooLargeException",
            ApiError::InvalidS3Object(_) => "InvalidS3ObjectException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            ApiError::InvalidPaginationToken(_) => "InvalidPaginationTokenException",
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            ApiError::IncompleteSignature(_) => "IncompleteSignatureException",
            ApiError::UnrecognizedClient(_) => "UnrecognizedClientException",
            ApiError::InvalidSignature(_) => "InvalidSignatureException",
            ApiError::SessionNotFound(_) => "SessionNotFoundException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::Internal(_) => "InternalServerError",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidParameter(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let message = public_message(&self.to_string());
        let body = serde_json::json!({ "__type": self.code(), "message": message });
        let mut response = (self.status(), body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::protocol::CONTENT_TYPE),
        );
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code()));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => {
                ApiError::ResourceNotFound(format!("The collection id: {id} does not exist"))
            }
            StoreError::AlreadyExists(id) => {
                ApiError::ResourceAlreadyExists(format!("The collection id: {id} already exists"))
            }
            other
            @ (StoreError::Io { .. } | StoreError::Corrupt { .. } | StoreError::Locked(_)) => {
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::InvalidFormat(detail) => {
                // The decoder's words (library names, byte offsets) help us, not the caller.
                tracing::debug!(%detail, "invalid image");
                ApiError::InvalidImageFormat("Request has invalid image format.".into())
            }
            ImageError::TooLarge(detail) => {
                tracing::debug!(%detail, "image too large");
                ApiError::ImageTooLarge("Image size is too large.".into())
            }
            ImageError::Model(m) => ApiError::Internal(format!("face model failed: {m}")),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    /// A blocking task panicked: a bug on our side, answered as such instead of crashing.
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a worker task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_message_is_one_short_line() {
        let dump =
            "Unable to get object.\nResponse { status: 404, headers: {\n  x-amz-request-id: 1\n} }";
        assert_eq!(public_message(dump), "Unable to get object.");
        let long = "word ".repeat(200);
        assert!(public_message(&long).chars().count() <= MAX_MESSAGE_CHARS);
        assert_eq!(public_message("  fine  "), "fine");
    }

    #[test]
    fn internal_errors_keep_their_detail_out_of_the_message() {
        let error = ApiError::Internal("writing /var/lib/facegate/faces.log: disk full".into());
        assert_eq!(error.to_string(), INTERNAL_MESSAGE);
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let from_model: ApiError = ImageError::Model("ort: /opt/x.so".into()).into();
        assert!(!from_model.to_string().contains("/opt"), "{from_model}");
        let bad: ApiError = ImageError::InvalidFormat("jpeg-decoder: EOF at 0x1f".into()).into();
        assert_eq!(bad.to_string(), "Request has invalid image format.");
    }
}
