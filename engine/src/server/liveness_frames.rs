//! The client's side of the Face Liveness stand-in ([`crate::liveness`]), where AWS has its
//! streaming `StartFaceLivenessSession`: `GET /liveness/sessions/{id}` says which head pose
//! each step asks and how long the session has left, and `PUT
//! /liveness/sessions/{id}/frames/{n}` uploads step `n`'s frame (a JPEG or PNG, at most
//! Rekognition's 5 MB inline limit), once.
//!
//! These routes are not signed: like a presigned URL, the session id (a random UUID that only
//! the challenged client is told) is the credential, and it opens nothing but its own frames.
//! Errors are JSON `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::EngineState;
use super::image::MAX_INLINE_IMAGE_BYTES;
use crate::liveness::FrameError;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

fn no_session() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "session-not-found",
        "no such liveness session",
    )
}

fn frame_refused(error: FrameError) -> Response {
    let (status, code) = match error {
        FrameError::NotFound => (StatusCode::NOT_FOUND, "session-not-found"),
        FrameError::Expired => (StatusCode::GONE, "session-expired"),
        FrameError::NoSuchStep(_) => (StatusCode::NOT_FOUND, "no-such-step"),
        FrameError::AlreadyUploaded(_) => (StatusCode::CONFLICT, "frame-already-uploaded"),
        FrameError::Decided => (StatusCode::CONFLICT, "session-decided"),
        FrameError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
    };
    refuse(status, code, &error.to_string())
}

/// `GET /liveness/sessions/{id}`.
pub async fn steps(State(state): State<Arc<EngineState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return no_session();
    };
    match state.liveness.steps(id, Instant::now()) {
        Ok((steps, left)) => Json(serde_json::json!({
            "SessionId": id.to_string(),
            "Steps": steps.to_string(),
            "ExpiresInSeconds": left.as_secs(),
        }))
        .into_response(),
        Err(error) => frame_refused(error),
    }
}

/// `PUT /liveness/sessions/{id}/frames/{n}`.
pub async fn put_frame(
    State(state): State<Arc<EngineState>>,
    Path((id, step)): Path<(String, String)>,
    body: Body,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return no_session();
    };
    let Ok(step) = step.parse::<usize>() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no-such-step",
            "steps are numbered from 1",
        );
    };
    let Ok(frame) = axum::body::to_bytes(body, MAX_INLINE_IMAGE_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "frame-too-large",
            "a frame is at most 5 MB",
        );
    };
    match state.liveness.put_frame(id, step, frame, Instant::now()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => frame_refused(error),
    }
}
