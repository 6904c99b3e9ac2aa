//! The HTTP routes, one file each, and what they share: reading a body within its limit.
//!
//! - [`cognito`]: `POST /cognito/define|create|verify`, the triggers over HTTP.
//! - [`verify`]: `POST /v1/verify`, a selfie checked directly (apps without Cognito).
//! - [`registrations`]: `POST /v1/registrations`, `GET /v1/registrations/{user_id}`.
//! - [`users`]: `DELETE /v1/users/{user_id}`, erasure.

pub mod cognito;
pub mod registrations;
pub mod users;
pub mod verify;

use axum::body::{Body, Bytes};
use serde::de::DeserializeOwned;

use crate::error::VerifierError;

/// The body, refused with `payload-too-large` past `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, VerifierError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| VerifierError::PayloadTooLarge {
            limit: limit as u64,
        })
}

/// A JSON body of type `T`, within `limit` bytes.
pub async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    expected: &'static str,
) -> Result<T, VerifierError> {
    let bytes = read_body(body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| VerifierError::invalid(expected, e))
}
