//! GetFaceLivenessSessionResults: a session's status, and once every frame is in, its
//! decision (made on the first read, then kept) with the reference image.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use facegate_shared::liveness::Frame;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::liveness::{Decision, LIVE_CONFIDENCE, Progress, judge};
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::wire::BoundingBox;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub session_id: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub session_id: String,
    /// CREATED, IN_PROGRESS, SUCCEEDED, FAILED or EXPIRED.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_image: Option<AuditImage>,
    /// AWS's sampled frames; the stand-in keeps none.
    pub audit_images: Vec<AuditImage>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct AuditImage {
    /// Base64 of the JPEG or PNG, as the protocol sends blobs.
    pub bytes: String,
    pub bounding_box: BoundingBox,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let text = request
        .session_id
        .ok_or_else(|| ApiError::invalid("SessionId is required"))?;
    let id = Uuid::parse_str(&text)
        .map_err(|_| ApiError::invalid(format!("SessionId {text:?} is not a session id")))?;
    let not_found = || ApiError::SessionNotFound(format!("Session {id} was not found."));
    let progress = state
        .liveness
        .progress(id, Instant::now())
        .ok_or_else(not_found)?;
    let response = |status, decision: Option<&Decision>| Response {
        session_id: id.to_string(),
        status,
        confidence: decision.map(|d| match d {
            Decision::Live { .. } => LIVE_CONFIDENCE,
            Decision::NotLive(_) => 0.0,
        }),
        reference_image: match decision {
            Some(Decision::Live {
                reference,
                bounding_box,
            }) => Some(AuditImage {
                bytes: STANDARD.encode(reference),
                bounding_box: (*bounding_box).into(),
            }),
            _ => None,
        },
        audit_images: Vec::new(),
    };
    let decision = match progress {
        Progress::Created => return Ok(response("CREATED", None)),
        Progress::InProgress => return Ok(response("IN_PROGRESS", None)),
        Progress::Expired => return Ok(response("EXPIRED", None)),
        Progress::Decided(decision) => decision,
        Progress::Complete { steps, frames } => {
            let decision = decide(state, &steps, frames).await?;
            if let Decision::NotLive(why) = &decision {
                tracing::info!(session = %id, why, "liveness session not live");
            }
            state.liveness.decide(id, decision)
        }
    };
    let status = match decision {
        Decision::Live { .. } => "SUCCEEDED",
        Decision::NotLive(_) => "FAILED",
    };
    Ok(response(status, Some(&decision)))
}

/// The checks of [`judge`], after the ones on the bytes themselves: each frame decodes, and
/// none is a replay.
async fn decide(
    state: &EngineState,
    steps: &facegate_shared::liveness::Sequence,
    uploaded: Vec<bytes::Bytes>,
) -> Result<Decision, ApiError> {
    let decoded: Option<Vec<Frame>> =
        tokio::task::spawn_blocking(move || uploaded.into_iter().map(Frame::decode).collect())
            .await
            .map_err(|e| ApiError::Internal(format!("decoding liveness frames: {e}")))?;
    let Some(frames) = decoded else {
        return Ok(Decision::NotLive("a frame is not a JPEG or PNG image"));
    };
    let fingerprints: Vec<_> = frames.iter().map(|f| f.fingerprint.clone()).collect();
    if state.liveness.replayed(&fingerprints) {
        return Ok(Decision::NotLive(
            "a frame repeats another or a recent session's",
        ));
    }
    let mut analyses = Vec::with_capacity(frames.len());
    for frame in &frames {
        match state.images.analyze_bytes(frame.bytes.to_vec()).await {
            Ok(analysis) => analyses.push(analysis),
            Err(ApiError::Internal(detail)) => return Err(ApiError::Internal(detail)),
            Err(_) => {
                return Ok(Decision::NotLive(
                    "a frame is not an image the engine reads",
                ));
            }
        }
    }
    Ok(judge(steps, &frames, &analyses))
}
