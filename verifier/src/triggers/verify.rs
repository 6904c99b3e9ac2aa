//! Verify auth challenge response: is the selfie at the answered key the registered face?
//!
//! In order, each step a refusal with its own reason:
//! 1. the answer is exactly the issued key (`wrong-answer`);
//! 2. the challenge is claimed in the `challenges` table: recorded, unanswered, unexpired
//!    (`challenge-reused`, `challenge-expired`);
//! 3. neither the device (`clientMetadata.deviceId`) nor the source address is timed out for
//!    failed liveness checks ([`crate::timeout`], `liveness-timed-out`);
//! 4. the selfie exists, is not older than the challenge and within the size limit
//!    (`selfie-missing`, `selfie-stale`, `selfie-too-large`);
//! 5. the face work ([`crate::face`]): an image, exactly one face, a match at the threshold.
//!    With `aws-face-liveness`, steps 4 and 5 are instead: the challenge's Face Liveness
//!    session ended live at `FACEGATE_LIVENESS_MIN_CONFIDENCE` (`liveness-not-confirmed`,
//!    [`crate::face_liveness`]), and its reference image passes step 5.
//!
//! Then the selfie is deleted and the outcome published on `auth-events`. Every refusal and
//! every error or timeout of a dependency is `answerCorrect: false` (fail closed); only a
//! match is `true`. The face matched is the one the server recorded when it issued the
//! challenge, never one named by the event.

use std::net::IpAddr;
use std::time::Instant;

use aws_lambda_events::event::cognito::CognitoEventUserPoolsVerifyAuthChallenge;
use chrono::Utc;
use facegate_shared::events::{AuthChannel, AuthFailureReason, AuthOutcome, Origin};
use facegate_shared::ids::{DeviceId, UserId};
use facegate_shared::report::chain;

use super::Timings;
use crate::account;
use crate::challenge::{self, ClaimError, IssuedChallenge};
use crate::error::VerifierError;
use crate::face::{self, FaceVerdict};
use crate::face_liveness;
use crate::liveness::{self, Frame};
use crate::outcome::{self, Answer};
use crate::selfie::{self, FetchError};
use crate::service::Verifier;
use crate::timeout;

/// The client metadata key naming the device (the sign-in page sends a random id it keeps).
pub const DEVICE_ID: &str = "deviceId";

pub async fn verify(
    verifier: &Verifier,
    mut event: CognitoEventUserPoolsVerifyAuthChallenge,
    source: Option<IpAddr>,
) -> Result<(CognitoEventUserPoolsVerifyAuthChallenge, Timings), VerifierError> {
    let user_name = event
        .cognito_event_user_pools_header
        .user_name
        .clone()
        .unwrap_or_default();
    let mut timings = Timings::default();
    let device = device_of(&event);
    let origins = Origin::known(device.as_ref(), source);
    let answer = match UserId::parse(user_name.as_str()) {
        // Not a user id facegate could ever have issued a challenge for: nobody to count the
        // failure against, so nothing is published.
        Err(_) => None,
        Ok(user) => {
            let judged = judge(verifier, &event, user.clone(), &origins, &mut timings).await;
            let mut answer = match judged {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::error!(user = %user, error = %chain(&e),
                        "verify could not decide: the answer is wrong");
                    Answer::failure(user, AuthFailureReason::ServiceError, AuthChannel::Cognito)
                }
            };
            answer.source = source;
            answer.device = device;
            let started = Instant::now();
            outcome::publish(verifier, &answer).await;
            timings.store += started.elapsed();
            Some(answer)
        }
    };
    event.response.answer_correct = answer.as_ref().is_some_and(Answer::is_success);
    Ok((event, timings))
}

/// The device the client names, if it names a well-formed one (anything else is ignored:
/// the per-source limit still holds).
fn device_of(event: &CognitoEventUserPoolsVerifyAuthChallenge) -> Option<DeviceId> {
    let named = event.request.client_metadata.get(DEVICE_ID)?;
    DeviceId::parse(named.as_str())
        .inspect_err(|e| tracing::warn!(error = %e, "ignoring the client's device id"))
        .ok()
}

/// Steps 1 to 4 for a well-formed user id.
async fn judge(
    verifier: &Verifier,
    event: &CognitoEventUserPoolsVerifyAuthChallenge,
    user: UserId,
    origins: &[Origin],
    timings: &mut Timings,
) -> Result<Answer, VerifierError> {
    let deadline = verifier.deadline();
    let refuse = |reason| Answer::failure(user.clone(), reason, AuthChannel::Cognito);
    if event.request.user_not_found {
        return Ok(refuse(AuthFailureReason::NotRegistered));
    }
    let ttl = verifier.settings().challenge_ttl();
    let Some(issued) =
        IssuedChallenge::from_private_parameters(&event.request.private_challenge_parameters, ttl)
            .filter(|issued| issued.upload.user_id == user)
    else {
        return Ok(refuse(AuthFailureReason::WrongAnswer));
    };
    let with_challenge = |mut answer: Answer| {
        answer.challenge_id = Some(issued.upload.challenge_id.clone());
        answer
    };
    let answer_text = event
        .request
        .challenge_answer
        .as_ref()
        .and_then(|a| a.as_str());
    if let Err(reason) = selfie::check_answer(answer_text, &issued) {
        return Ok(with_challenge(refuse(reason)));
    }

    let started = Instant::now();
    let claimed = challenge::claim(verifier, &issued, Utc::now(), &deadline).await;
    timings.store += started.elapsed();
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(ClaimError::Refused(reason)) => return Ok(with_challenge(refuse(reason))),
        Err(ClaimError::Failed(e)) => return Err(e),
    };

    // After the claim, so a timed-out client's challenge is spent like any other.
    let started = Instant::now();
    let timed_out = timeout::timed_out(verifier, origins, Utc::now(), &deadline).await;
    timings.store += started.elapsed();
    if let Some(origin) = timed_out? {
        tracing::info!(user = %user, %origin, "refused: timed out for failed liveness checks");
        let keys = match &claimed.steps {
            Some(steps) => IssuedChallenge {
                steps: Some(steps.clone()),
                ..issued.clone()
            }
            .frame_keys(),
            None => vec![issued.key()],
        };
        futures::future::join_all(keys.iter().map(|key| selfie::delete(verifier, key))).await;
        return Ok(with_challenge(refuse(AuthFailureReason::LivenessTimedOut)));
    }

    if let Some(session) = &claimed.liveness_session {
        // The session is the record's, never the event's.
        let min_confidence = verifier.settings().liveness_min_confidence;
        let started = Instant::now();
        let live = face_liveness::live_reference(verifier, session, min_confidence, &deadline);
        let verdict = match live.await {
            // The face matched is the session's own frame, never an upload of the client's.
            Ok(reference) => {
                face::verify_selfie(verifier, reference, &claimed.face_id, &deadline).await
            }
            Err(reason) => refused(reason),
        };
        timings.face += started.elapsed();
        return Ok(with_challenge(answer_from(
            user,
            verdict,
            AuthChannel::Cognito,
        )));
    }

    if let Some(steps) = &claimed.steps {
        // The steps are the record's, never the event's.
        let issued = IssuedChallenge {
            steps: Some(steps.clone()),
            ..issued.clone()
        };
        let verdict = judge_frames(verifier, &issued, &claimed, timings, &deadline).await?;
        return Ok(with_challenge(answer_from(
            user,
            verdict,
            AuthChannel::Cognito,
        )));
    }

    let key = issued.key();
    let started = Instant::now();
    let fetched = selfie::fetch(verifier, &key, claimed.issued_at, &deadline).await;
    timings.s3 += started.elapsed();
    let bytes = match fetched {
        Ok(bytes) => bytes,
        Err(FetchError::Refused(reason)) => {
            if reason != AuthFailureReason::SelfieMissing {
                selfie::delete(verifier, &key).await;
            }
            return Ok(with_challenge(refuse(reason)));
        }
        Err(FetchError::Failed(e)) => return Err(e),
    };

    let started = Instant::now();
    let verdict = face::verify_selfie(verifier, bytes, &claimed.face_id, &deadline).await;
    timings.face += started.elapsed();

    // The selfie is not kept, whatever the verdict.
    let started = Instant::now();
    selfie::delete(verifier, &key).await;
    timings.s3 += started.elapsed();

    Ok(with_challenge(answer_from(
        user,
        verdict,
        AuthChannel::Cognito,
    )))
}

/// Step 3 and 4 for a liveness challenge: every frame there and written within the
/// challenge's window (the claim already refused an answer after it, and the presigned URLs
/// expire with it); no frame a replay of another or of a remembered earlier frame; then the
/// face work on the frames ([`face::verify_frames`]). The frames are deleted whatever the
/// verdict, and their fingerprints remembered even on a refusal, so a refused frame cannot be
/// tried again.
async fn judge_frames(
    verifier: &Verifier,
    issued: &IssuedChallenge,
    claimed: &challenge::Claimed,
    timings: &mut Timings,
    deadline: &crate::deadline::Deadline,
) -> Result<FaceVerdict, VerifierError> {
    let keys = issued.frame_keys();
    let Some(steps) = &issued.steps else {
        return Ok(refused(AuthFailureReason::LivenessFrameMissing));
    };
    let started = Instant::now();
    let fetched = futures::future::join_all(
        keys.iter()
            .map(|key| selfie::fetch(verifier, key, claimed.issued_at, deadline)),
    )
    .await;
    timings.s3 += started.elapsed();
    let delete_all = || async {
        futures::future::join_all(keys.iter().map(|key| selfie::delete(verifier, key))).await;
    };
    let mut frames = Vec::with_capacity(keys.len());
    for outcome in fetched {
        match outcome {
            Ok(bytes) => frames.push(bytes),
            Err(FetchError::Refused(reason)) => {
                delete_all().await;
                return Ok(refused(match reason {
                    AuthFailureReason::SelfieMissing => AuthFailureReason::LivenessFrameMissing,
                    AuthFailureReason::SelfieStale => AuthFailureReason::LivenessFrameOutsideWindow,
                    other => other,
                }));
            }
            Err(FetchError::Failed(e)) => return Err(e),
        }
    }

    let user = &issued.upload.user_id;
    let Some(frames) = frames
        .into_iter()
        .map(Frame::decode)
        .collect::<Option<Vec<_>>>()
    else {
        delete_all().await;
        return Ok(refused(AuthFailureReason::NotAnImage));
    };
    let fingerprints: Vec<_> = frames.iter().map(|f| f.fingerprint.clone()).collect();
    let started = Instant::now();
    let memory = account::liveness_memory(verifier, user, deadline).await?;
    let replayed = liveness::any_replayed(&fingerprints, &memory.recent_frames);
    let kept = liveness::remembered(&fingerprints, &memory.recent_frames);
    account::remember_liveness(verifier, user, None, Some(&kept), deadline).await?;
    timings.store += started.elapsed();
    if replayed {
        delete_all().await;
        return Ok(refused(AuthFailureReason::LivenessReplayedFrame));
    }

    let started = Instant::now();
    let verdict = face::verify_frames(verifier, &frames, steps, &claimed.face_id, deadline).await;
    timings.face += started.elapsed();
    let started = Instant::now();
    delete_all().await;
    timings.s3 += started.elapsed();
    Ok(verdict)
}

fn refused(reason: AuthFailureReason) -> FaceVerdict {
    FaceVerdict::Refused {
        reason,
        similarity: None,
    }
}

/// The answer a face verdict makes.
pub(crate) fn answer_from(user: UserId, verdict: FaceVerdict, channel: AuthChannel) -> Answer {
    match verdict {
        FaceVerdict::Match { similarity } => Answer {
            outcome: AuthOutcome::Success,
            similarity: Some(similarity),
            ..Answer::failure(user, AuthFailureReason::NoMatch, channel)
        },
        FaceVerdict::Refused { reason, similarity } => Answer {
            similarity,
            ..Answer::failure(user, reason, channel)
        },
    }
}
