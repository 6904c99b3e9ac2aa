//! CreateFaceLivenessSession: opens a session of the Face Liveness stand-in
//! ([`crate::liveness`]).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::server::EngineState;
use crate::server::error::ApiError;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    /// Accepted and unused: nothing is stored at rest.
    pub kms_key_id: Option<String>,
    /// Accepted and unused: the stand-in writes no audit images to S3.
    pub settings: Option<serde_json::Value>,
    /// The same token gives the same session (a retried call opens no second one).
    pub client_request_token: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub session_id: String,
}

/// Rekognition's limit on `ClientRequestToken`: 1-64 of `[a-zA-Z0-9-_]`.
fn check_token(token: &str) -> Result<(), ApiError> {
    let valid = !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "ClientRequestToken must be 1-64 characters of [a-zA-Z0-9-_]",
        ))
    }
}

pub fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    if let Some(token) = &request.client_request_token {
        check_token(token)?;
    }
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let id = state
        .liveness
        .create(
            request.client_request_token.as_deref(),
            random,
            Instant::now(),
        )
        .map_err(|e| ApiError::LimitExceeded(e.to_string()))?;
    tracing::info!(session = %id, "liveness session created");
    Ok(Response {
        session_id: id.to_string(),
    })
}
