//! Rekognition Face Liveness, for the `aws-face-liveness` policy: Create opens a session per
//! challenge ([`open_session`]); the client runs AWS's FaceLivenessDetector on it (locally,
//! the engine's stand-in takes one frame per head-pose step); Verify reads the session's
//! result ([`live_reference`]) and matches its reference image against the registered face.
//!
//! Both calls wait for the face-service limiter and run under the request's deadline, like
//! every other face call ([`crate::face`]).

use aws_sdk_rekognition::error::ProvideErrorMetadata;
use aws_sdk_rekognition::types::LivenessSessionStatus;
use bytes::Bytes;
use facegate_shared::events::AuthFailureReason;
use facegate_shared::ids::ChallengeId;

use crate::deadline::Deadline;
use crate::error::VerifierError;
use crate::service::Verifier;

/// Opens the Face Liveness session of a challenge. The challenge id is the
/// `ClientRequestToken`, so a call the SDK retries opens no second session.
pub async fn open_session(
    verifier: &Verifier,
    challenge: &ChallengeId,
    deadline: &Deadline,
) -> Result<String, VerifierError> {
    let call = async {
        verifier.limiter().acquire().await;
        verifier
            .rekognition()
            .create_face_liveness_session()
            .client_request_token(challenge.as_str())
            .send()
            .await
    };
    let created = deadline
        .run("CreateFaceLivenessSession", call)
        .await?
        .map_err(|e| VerifierError::dependency("CreateFaceLivenessSession", e))?;
    Ok(created.session_id().to_string())
}

/// The session's reference image, if the session ended live at `min_confidence` or more.
/// Anything else (not finished, expired, judged not live, unknown) is
/// `liveness-not-confirmed`; a failing face service is `face-service-error`.
pub async fn live_reference(
    verifier: &Verifier,
    session: &str,
    min_confidence: f32,
    deadline: &Deadline,
) -> Result<Bytes, AuthFailureReason> {
    let call = async {
        verifier.limiter().acquire().await;
        verifier
            .rekognition()
            .get_face_liveness_session_results()
            .session_id(session)
            .send()
            .await
    };
    let results = match deadline.run("GetFaceLivenessSessionResults", call).await {
        Ok(Ok(results)) => results,
        Ok(Err(e)) if e.code() == Some("SessionNotFoundException") => {
            tracing::info!(session, "liveness session not found");
            return Err(AuthFailureReason::LivenessNotConfirmed);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %facegate_shared::report::chain(&e),
                "GetFaceLivenessSessionResults failed: refusing");
            return Err(AuthFailureReason::FaceServiceError);
        }
        Err(late) => {
            tracing::warn!(error = %late, "face service too slow: refusing");
            return Err(AuthFailureReason::FaceServiceError);
        }
    };
    let confidence = results.confidence().unwrap_or(0.0);
    let status = results.status();
    let reference = results
        .reference_image()
        .and_then(|image| image.bytes())
        .map(|blob| Bytes::copy_from_slice(blob.as_ref()));
    match (status, reference) {
        (LivenessSessionStatus::Succeeded, Some(reference)) if confidence >= min_confidence => {
            Ok(reference)
        }
        _ => {
            tracing::info!(
                session,
                ?status,
                confidence,
                min_confidence,
                "liveness session not confirmed"
            );
            Err(AuthFailureReason::LivenessNotConfirmed)
        }
    }
}
