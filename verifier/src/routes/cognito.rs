//! `POST /cognito/define`, `/cognito/create`, `/cognito/verify`: Cognito's trigger events as
//! JSON bodies, answered with the same event, `response` filled out. This is what a thin
//! forwarding Lambda (or a test playing Cognito) calls.

use std::net::IpAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::read_json;
use crate::error::VerifierError;
use crate::service::Verifier;
use crate::triggers;

pub async fn define(
    State(verifier): State<Verifier>,
    body: Body,
) -> Result<Json<Value>, VerifierError> {
    let limit = verifier.settings().max_json_bytes;
    let event = read_json(body, limit, "define-auth-challenge event").await?;
    let event = triggers::define(&verifier, event).await?;
    to_json(&event)
}

pub async fn create(
    State(verifier): State<Verifier>,
    body: Body,
) -> Result<Json<Value>, VerifierError> {
    let limit = verifier.settings().max_json_bytes;
    let event = read_json(body, limit, "create-auth-challenge event").await?;
    let event = triggers::create(&verifier, event).await?;
    to_json(&event)
}

pub async fn verify(
    State(verifier): State<Verifier>,
    body: Body,
) -> Result<Response, VerifierError> {
    let limit = verifier.settings().max_json_bytes;
    let raw: Value = read_json(body, limit, "verify-auth-challenge event").await?;
    let source = source_ip(&raw);
    let event = serde_json::from_value(raw)
        .map_err(|e| VerifierError::invalid("verify-auth-challenge event", e))?;
    let (event, timings) = triggers::verify(&verifier, event, source).await?;
    let mut response = to_json(&event)?.into_response();
    if let Ok(value) = HeaderValue::from_str(&timings.server_timing()) {
        response.headers_mut().insert("server-timing", value);
    }
    Ok(response)
}

/// The client's address, when Cognito passes it (`request.userContextData.sourceIp`, present
/// with threat protection). The typed event has no field for it, so it is read from the raw
/// JSON.
pub fn source_ip(raw: &Value) -> Option<IpAddr> {
    raw.pointer("/request/userContextData/sourceIp")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
}

fn to_json(event: &impl serde::Serialize) -> Result<Json<Value>, VerifierError> {
    serde_json::to_value(event)
        .map(Json)
        .map_err(|e| VerifierError::dependency("serialising the event", e))
}
