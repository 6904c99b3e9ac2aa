//! Rekognition's errors, as the AWS JSON 1.1 protocol sends them.
//!
//! An error is an HTTP status and a body `{"__type": "<Code>", "message": "..."}`; the SDK
//! turns the `__type` into the matching error variant (`InvalidParameterException` ...).
//! Rekognition answers every client error with 400 and its own failures with 500.

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
    /// Our fault, never the caller's: a disk or model failure.
    #[error("{0}")]
    Internal(String),
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
        if let ApiError::Internal(message) = &self {
            tracing::error!(%message, "internal error");
        }
        let body = serde_json::json!({ "__type": self.code(), "message": self.to_string() });
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
            ImageError::InvalidFormat(m) => {
                ApiError::InvalidImageFormat(format!("Request has invalid image format: {m}"))
            }
            ImageError::TooLarge(m) => ApiError::ImageTooLarge(format!("Image too large: {m}")),
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
